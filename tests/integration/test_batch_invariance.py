"""Stateless and deterministic (issue 11, section 2): a text alone and the same text inside a request
of 32 others get the same answer, with the real int8 models.

Dynamic int8 quantisation picks one activation scale per onnxruntime call, so a model run with more
than one window per call gives a text a vector that moves with its batch-mates (at 8 per call, 4 and
15 of 320 yelp sentences flipped for e5 and MiniLM). Both text models run one window per call
(``ModelManifest.batch_size`` 1, set by their build recipes)."""

from __future__ import annotations

import numpy as np
import pytest

from labelwise.classify.scoring import cosine_similarity, softmax
from labelwise.embedding.manifest import MANIFEST_FILE
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.settings import Settings

pytestmark = pytest.mark.model

#: Short and long, several languages, near-ties included (reviews that are neither clearly good nor bad).
TEXTS = [
    "The food was okay, nothing special, but the staff were friendly.",
    "I wouldn't go back, though the dessert was nice.",
    "Not bad at all for the price.",
    "Das Essen war in Ordnung, der Service eher langsam.",
    "Le film était long mais pas désagréable.",
    "服务一般，价格还可以。",
    "It works, I guess. Battery life could be better and the screen is dim outdoors.",
    "Average experience overall.",
    "Great location, terrible wifi, decent breakfast.",
    "El hotel estaba limpio pero el personal no fue muy amable.",
    "Shipping took three weeks but the product itself is fine.",
    "meh",
]
LABELS = ["negative", "positive"]


def _embedder(name: str) -> OnnxEmbedder:
    root = Settings.from_environ().model_dir
    if not (root / name / MANIFEST_FILE).exists():
        pytest.skip(f"{name} not built in {root} (make model)")
    return OnnxEmbedder.from_dir(root / name, intra_op_threads=1)


def _alone_and_in_a_batch(name: str) -> tuple[np.ndarray, np.ndarray]:
    emb = _embedder(name)
    labels = emb.embed(LABELS, "label").vectors
    filler = [f"Review number {i}: it was {'good' if i % 2 else 'bad'}, " * (1 + i % 5) for i in range(31)]
    alone, together = [], []
    for text in TEXTS:
        alone.append(emb.embed([text], "input").vectors[0])
        # the text in the middle of 31 others of other lengths and contents
        request = [*filler[:15], text, *filler[15:]]
        together.append(emb.embed(request, "input").vectors[15])
    scale = emb.manifest.temperature
    return softmax(cosine_similarity(np.stack(alone), labels), scale), softmax(
        cosine_similarity(np.stack(together), labels), scale
    )


@pytest.mark.parametrize("model", ["multilingual-e5-small", "all-minilm-l6-v2"])
def test_a_text_gets_the_same_answer_alone_or_among_32(model: str) -> None:
    # Given a built text model and texts near the sentiment boundary
    # When each text is scored alone, and again as the 16th of a request of 32
    P, Q = _alone_and_in_a_batch(model)
    # Then the predictions are the same and the scores agree within 1e-4
    assert (P.argmax(axis=1) == Q.argmax(axis=1)).all()
    np.testing.assert_allclose(P, Q, atol=1e-4, rtol=0)
