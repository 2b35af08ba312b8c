"""Choose the NLU classifier and its fallback threshold on the real-user DEV set.

Trains candidate classifiers on data/nlu with scikit-learn directly (no Rasa
model needed), scores them on tests/nlu_realworld/build/dev.yml and prints, per
candidate, the share of in-scope messages understood and of out-of-scope
messages taken for a topic at each fallback threshold. The frozen TEST set is
never read here. Usage: python -m bench.nlu_select [--test]  (--test: also
report the chosen configuration on the frozen test set, once, at the end).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np

from bench.nlu_eval import FALLBACK, OUT_OF_SCOPE, read_nlu_examples
from supportbot.settings import PROJECT_ROOT

TRAINING_DIR = PROJECT_ROOT / "data" / "nlu"
REALWORLD = PROJECT_ROOT / "tests" / "nlu_realworld" / "build"
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


def training_examples() -> List[Tuple[str, str]]:
    return [pair for path in sorted(TRAINING_DIR.glob("*.yml")) for pair in read_nlu_examples(path)]


def rates(gold: Sequence[str], top: Sequence[str], confidence: np.ndarray, threshold: float) -> Tuple[float, float]:
    """(in-scope understood, out-of-scope accepted as a topic) at ``threshold``."""
    predicted = [p if c >= threshold else FALLBACK for p, c in zip(top, confidence)]
    predicted = [OUT_OF_SCOPE if p == FALLBACK else p for p in predicted]
    inscope = [(g, p) for g, p in zip(gold, predicted) if g != OUT_OF_SCOPE]
    oos = [p for g, p in zip(gold, predicted) if g == OUT_OF_SCOPE]
    return (sum(g == p for g, p in inscope) / len(inscope),
            sum(p != OUT_OF_SCOPE for p in oos) / max(len(oos), 1))


class CachedEncoder:
    """The shared encoder with a per-text cache (kept in a file between runs)."""

    def __init__(self, path: Path) -> None:
        from supportbot.sentence_encoder import SentenceEncoder

        self.path, self.encoder, self.cache = path, None, {}
        self._new = SentenceEncoder
        if path.exists():
            with np.load(path) as data:
                self.cache = dict(zip(data["texts"].tolist(), data["vectors"]))

    def encode(self, texts: List[str]) -> np.ndarray:
        missing = sorted({t for t in texts if t not in self.cache})
        if missing:
            self.encoder = self.encoder or self._new()
            for text, vector in zip(missing, self.encoder.encode(missing)):
                self.cache[text] = vector
            texts_array = np.array(list(self.cache), dtype=str)
            np.savez(self.path, texts=texts_array, vectors=np.stack([self.cache[t] for t in texts_array.tolist()]))
        return np.stack([self.cache[t] for t in texts])


def candidates(config_overrides: Dict[str, dict]) -> Dict[str, Callable]:
    from supportbot.intent_classifier import TfidfIntentClassifier, build_pipeline

    def make(overrides: dict) -> Callable:
        def fit_predict(train: List[Tuple[str, str]], texts: List[str]):
            config = {**TfidfIntentClassifier.get_default_config(), **overrides}
            pipeline = build_pipeline(config)
            pipeline.fit([t for t, _ in train], [l for _, l in train])
            proba = pipeline.predict_proba(texts)
            return pipeline.classes_[proba.argmax(axis=1)], proba.max(axis=1)
        return fit_predict

    return {name: make(overrides) for name, overrides in config_overrides.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--test", action="store_true")
    parser.add_argument("--only", default="")
    args = parser.parse_args(argv)
    import supportbot.intent_classifier as intent_classifier

    cached = CachedEncoder(REALWORLD / "embedding_cache.npz")  # git-ignored, beside the sets
    intent_classifier._ENCODER[:] = [cached]
    train = training_examples()
    dev = read_nlu_examples(REALWORLD / "dev.yml")
    configs = {
        "tfidf C=10 (before)": {"encoder_weight": 0.0},
        "encoder only": {"tfidf": False, "encoder_weight": 1.0},
        "tfidf + encoder w=1": {"encoder_weight": 1.0},
        "tfidf + encoder w=2": {"encoder_weight": 2.0},
        "tfidf + encoder w=3": {"encoder_weight": 3.0},
        "tfidf + encoder w=2 C=3": {"encoder_weight": 2.0, "C": 3.0},
        "tfidf + encoder w=2 C=30": {"encoder_weight": 2.0, "C": 30.0},
        "tfidf + encoder w=1.5 C=20": {"encoder_weight": 1.5, "C": 20.0},
    }
    if args.only:
        configs = {k: v for k, v in configs.items() if args.only in k}
    print(f"training examples: {len(train)}, dev: {len(dev)}")
    for name, fit_predict in candidates(configs).items():
        started = time.perf_counter()
        top, confidence = fit_predict(train, [t for t, _ in dev])
        cells = []
        for threshold in THRESHOLDS:
            understood, accepted = rates([g for _, g in dev], top, confidence, threshold)
            cells.append(f"{threshold:.2f}: {understood:.1%}/{accepted:.1%}")
        print(f"{name} ({time.perf_counter() - started:.0f} s)\n  " + "\n  ".join(cells))


if __name__ == "__main__":
    main()
