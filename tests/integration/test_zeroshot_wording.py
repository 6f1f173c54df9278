"""Zero-shot with the real int8 model: a shared wording frame must not invert sentiment (issue 11)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelwise.classify.scoring import softmax
from labelwise.classify.zeroshot import LabelEmbeddingCache, zeroshot_logits
from labelwise.embedding.onnx_embedder import OnnxEmbedder

pytestmark = [pytest.mark.model, pytest.mark.slow]

REVIEWS = [
    ("I loved this phone, the battery lasts for days and the screen is gorgeous.", 0),
    ("Great food and friendly staff, we will definitely come back.", 0),
    ("One of the best films I have seen this year, wonderful acting.", 0),
    ("Excellent quality, works perfectly, highly recommended.", 0),
    ("The product broke after two days and support never answered.", 1),
    ("Terrible service, cold food and we waited an hour.", 1),
    ("A boring, predictable movie; I nearly walked out.", 1),
    ("Waste of money, it stopped working the first week.", 1),
]


@pytest.fixture(scope="module")
def embedder(built_model_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder.from_dir(built_model_dir)


def test_review_frame_does_not_invert_sentiment(embedder: OnnxEmbedder) -> None:
    # Given short reviews of known polarity and the labels "positive review" / "negative review"
    X = embedder.embed([t for t, _ in REVIEWS], role="input").vectors
    gold = np.array([y for _, y in REVIEWS])
    cache = LabelEmbeddingCache()
    # When they are scored zero-shot with the shipped scorer, and with the bare words
    framed = softmax(zeroshot_logits(X, ["positive review", "negative review"], embedder, cache), 0.012)
    bare = softmax(zeroshot_logits(X, ["positive", "negative"], embedder, cache), 0.012)
    # Then the framed labels get every review right, exactly as the bare words do
    assert (framed.argmax(axis=1) == gold).all()
    np.testing.assert_allclose(framed, bare, atol=1e-6)
    np.testing.assert_allclose(framed.sum(axis=1), 1.0, rtol=1e-5)
