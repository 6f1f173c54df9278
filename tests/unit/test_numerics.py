"""The shared softmax (labelwise.numerics) against a naive reference, and its invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose

from labelwise.numerics import softmax

finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
matrices = arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 6)), elements=finite)


def naive_softmax(row: list[float], t: float) -> list[float]:
    e = [math.exp(x / t) for x in row]
    return [x / sum(e) for x in e]


def test_matches_a_naive_reference() -> None:
    # Given random logits of moderate size (the naive formula does not overflow)
    rng = np.random.default_rng(11)
    logits = rng.uniform(-5, 5, size=(6, 9))
    for t in (0.05, 0.5, 1.0, 3.0):
        # When the softmax is taken at temperature t
        got = softmax(logits, t)
        # Then it matches exp(z / t) / sum exp(z / t) row by row, in float64
        expected = [naive_softmax(list(map(float, r)), t) for r in logits]
        assert got.dtype == np.float64
        assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


@settings(max_examples=60, deadline=None)
@given(logits=matrices, shift=finite, t=st.floats(0.01, 10))
def test_rows_sum_to_one_shift_invariant_and_input_untouched(
    logits: np.ndarray, shift: float, t: float
) -> None:
    # Given logits and a copy of them
    before = logits.copy()
    # When the softmax of the logits and of the logits shifted by a constant are taken
    p = softmax(logits, t)
    shifted = softmax(logits + shift, t)
    # Then every row is a distribution, the shift changes nothing, and the input is not modified
    assert p.shape == logits.shape
    assert np.all(p >= 0) and np.all(p <= 1)
    assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    assert_allclose(shifted, p, rtol=1e-9, atol=1e-12)
    assert np.array_equal(logits, before)


def test_large_logits_do_not_overflow_and_empty_rows_stay_empty() -> None:
    # Given logits whose exp overflows float64, and rows without classes
    p = softmax(np.array([[1000.0, 1000.0, -1000.0]]))
    empty = softmax(np.zeros((3, 0)))
    # Then the result is finite and exact, and the empty rows come back empty
    assert_allclose(p, [[0.5, 0.5, 0.0]])
    assert empty.shape == (3, 0)


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_temperature_must_be_positive(temperature: float) -> None:
    # When the temperature is not positive, Then the softmax refuses it
    with pytest.raises(ValueError, match="temperature"):
        softmax(np.zeros((1, 2)), temperature)


def test_logits_must_be_two_dimensional() -> None:
    # When the logits are a vector, Then the softmax refuses them
    with pytest.raises(ValueError, match="2-d"):
        softmax(np.zeros(3))


def test_open_npz_reads_every_array_of_an_in_memory_npz_from_many_threads():
    # Given an .npz in memory
    import io
    from concurrent.futures import ThreadPoolExecutor

    from labelwise.numerics import open_npz

    buffer = io.BytesIO()
    np.savez_compressed(buffer, a=np.arange(6.0).reshape(2, 3), b=np.array([1, 2], dtype=np.int64))
    data = buffer.getvalue()

    def read(_: int) -> dict:
        with open_npz(data) as read_arrays:
            return read_arrays

    # When 8 threads read it 200 times
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(read, range(200)))
    # Then every read gives every array, equal to what was saved
    for got in results:
        assert sorted(got) == ["a", "b"]
        np.testing.assert_array_equal(got["a"], np.arange(6.0).reshape(2, 3))
        np.testing.assert_array_equal(got["b"], [1, 2])
