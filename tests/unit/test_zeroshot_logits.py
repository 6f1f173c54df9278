"""zeroshot_logits: the zero-shot scores before the softmax, against a naive reference."""

from __future__ import annotations

import math

import numpy as np
from numpy.testing import assert_allclose

from labelwise.classify.zeroshot import LabelEmbeddingCache, zeroshot_label_vectors, zeroshot_logits
from tests.support.fakes import HashingEmbedder


def naive_cosine(a: list[float], b: list[float]) -> float:
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def test_logits_are_cosines_to_the_distinctive_label_embeddings() -> None:
    # Given inputs and labels that share a frame
    embedder = HashingEmbedder()
    X = embedder.embed(["great phone", "awful phone", "it broke"], role="input").vectors
    labels = ["positive review", "negative review"]
    # When scored
    S = zeroshot_logits(X, labels, embedder, LabelEmbeddingCache())
    # Then each score is the cosine to the embedding of the label without the shared word
    L = embedder.embed(["positive", "negative"], role="label").vectors
    expected = [[naive_cosine(list(map(float, x)), list(map(float, v))) for v in L] for x in X]
    assert_allclose(S, expected, rtol=1e-5, atol=1e-6)


def test_rows_are_stateless_and_inputs_not_mutated() -> None:
    # Given one input alone and the same input among others
    embedder = HashingEmbedder()
    X = embedder.embed(["spam offer now", "hello mum", "win a prize"], role="input").vectors
    X0 = X.copy()
    labels = ["This text is spam.", "This text is not spam."]
    cache = LabelEmbeddingCache()
    # When scored together and alone
    together = zeroshot_logits(X, labels, embedder, cache)
    alone = zeroshot_logits(X[1:2], labels, embedder, cache)
    # Then the row agrees (to float32 rounding) and nothing was modified
    assert_allclose(alone[0], together[1], rtol=0, atol=1e-6)
    assert_allclose(X, X0)
    assert labels == ["This text is spam.", "This text is not spam."]


def test_cache_is_keyed_by_the_text_embedded() -> None:
    # Given a cache filled by a framed wording
    embedder = HashingEmbedder()
    cache = LabelEmbeddingCache()
    framed, tokens = zeroshot_label_vectors(cache, embedder, ["positive review", "negative review"])
    # When the bare words are asked for
    bare, _ = zeroshot_label_vectors(cache, embedder, ["positive", "negative"])
    # Then they hit the same entries (same vectors, no second embedding) and tokens are reported
    assert_allclose(framed, bare)
    assert cache.misses == 2 and cache.hits == 2
    assert len(tokens) == 2 and all(t > 0 for t in tokens)
    assert np.isfinite(framed).all()
