"""Cosine similarity and softmax against naive references, and their invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose

from labelwise.classify.scoring import cosine_similarity, softmax


def naive_softmax(row: list[float], t: float) -> list[float]:
    m = max(row)
    e = [math.exp((x - m) / t) for x in row]
    return [x / sum(e) for x in e]


def naive_cosine(a: list[float], b: list[float]) -> float:
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    return 0.0 if na == 0 or nb == 0 else sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def test_softmax_matches_naive_reference() -> None:
    rng = np.random.default_rng(7)
    scores = rng.uniform(-1, 1, size=(5, 7)).astype(np.float32)
    for t in (0.01, 0.05, 1.0):
        expected = [naive_softmax(list(map(float, r)), t) for r in scores]
        assert_allclose(softmax(scores, t), expected, rtol=1e-5, atol=1e-7)


def test_cosine_matches_naive_reference_and_zero_rows_score_zero() -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 6)).astype(np.float32)
    b = rng.standard_normal((3, 6)).astype(np.float32)
    a[2] = 0
    expected = [[naive_cosine(list(x), list(y)) for y in b] for x in a]
    assert_allclose(cosine_similarity(a, b), expected, rtol=1e-5, atol=1e-6)


def test_inputs_are_not_mutated() -> None:
    a = np.array([[3.0, 4.0]], dtype=np.float32)
    b = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    a0, b0 = a.copy(), b.copy()
    cosine_similarity(a, b)
    softmax(b, 0.5)
    assert_allclose(a, a0)
    assert_allclose(b, b0)


def test_temperature_must_be_positive() -> None:
    with pytest.raises(ValueError):
        softmax(np.zeros((1, 2)), 0.0)


@settings(max_examples=200, deadline=None)
@given(
    arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 9)), elements=st.floats(-1, 1, width=32)),
    st.floats(0.005, 5.0),
)
def test_softmax_rows_are_distributions_preserving_order(scores: np.ndarray, t: float) -> None:
    p = softmax(scores, t)
    assert np.all(p >= 0) and np.all(np.isfinite(p))
    assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    # the best label keeps the highest probability (ties after float32 rounding allowed)
    assert np.all(p[np.arange(len(scores)), scores.argmax(axis=1)] == p.max(axis=1))
