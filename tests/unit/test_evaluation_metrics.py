"""Evaluation metrics against naive references and scikit-learn; temperature calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from labelwise.classify.scoring import softmax
from labelwise.evaluation import calibration
from labelwise.evaluation.metrics import (
    accuracy,
    expected_calibration_error,
    f1_per_class,
    macro_f1,
    negative_log_likelihood,
    paired_bootstrap,
)


def naive_ece(probs: list[list[float]], y: list[int], n_bins: int = 15) -> float:
    """Guo et al. (2017) eq. 3, written out with Python loops; bins (lo, hi], 0 in the first."""
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(n_bins)]
    for row, label in zip(probs, y, strict=True):
        conf = max(row)
        pred = row.index(conf)
        b = 0
        for k in range(n_bins):
            if k / n_bins < conf <= (k + 1) / n_bins:
                b = k
        bins[b].append((conf, pred == label))
    n = len(y)
    total = 0.0
    for members in bins:
        if members:
            acc = sum(c for _, c in members) / len(members)
            conf = sum(p for p, _ in members) / len(members)
            total += len(members) / n * abs(acc - conf)
    return total


def test_accuracy_and_macro_f1_match_sklearn() -> None:
    # Given random labels and predictions over 4 classes
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    p = np.where(rng.random(300) < 0.6, y, rng.integers(0, 4, 300))
    # When / Then: both agree with scikit-learn
    assert accuracy(y, p) == pytest.approx(sk.accuracy_score(y, p))
    assert macro_f1(y, p) == pytest.approx(sk.f1_score(y, p, average="macro"))
    assert macro_f1(y, p, 4) == pytest.approx(sk.f1_score(y, p, average="macro", labels=[0, 1, 2, 3]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=40))
def test_macro_f1_matches_sklearn_including_absent_classes(pairs: list[tuple[int, int]]) -> None:
    # Given any labelling, including classes that are never predicted or never true
    sk = pytest.importorskip("sklearn.metrics")
    y = [a for a, _ in pairs]
    p = [b for _, b in pairs]
    # Then macro-F1 over present classes equals sklearn's (zero_division=0)
    assert macro_f1(y, p) == pytest.approx(sk.f1_score(y, p, average="macro", zero_division=0))
    assert_allclose(f1_per_class(y, p, 5), sk.f1_score(y, p, average=None, labels=range(5), zero_division=0))


def test_ece_matches_naive_reference() -> None:
    # Given softmax probabilities of random logits and partly correct labels
    rng = np.random.default_rng(1)
    P = softmax(rng.normal(0, 3, (500, 3)).astype(np.float32), 1.0).astype(np.float64)
    y = np.where(rng.random(500) < 0.7, P.argmax(1), rng.integers(0, 3, 500))
    # When / Then: vectorised ECE equals the loop version, for 15 and 10 bins
    for bins in (15, 10):
        expected = naive_ece(P.tolist(), y.tolist(), bins)
        assert expected_calibration_error(P, y, bins) == pytest.approx(expected, abs=1e-12)


def test_ece_edge_cases() -> None:
    # Given a perfectly confident, always right model: ECE is 0
    assert expected_calibration_error(np.eye(3), [0, 1, 2]) == 0.0
    # Given a perfectly confident, always wrong model: ECE is 1
    assert expected_calibration_error(np.eye(3), [1, 2, 0]) == pytest.approx(1.0)
    # Given confidence 0.6 with 60 % accuracy: ECE is 0 (bin edges do not matter)
    P = np.tile([0.6, 0.4], (10, 1))
    y = [0] * 6 + [1] * 4
    assert expected_calibration_error(P, y) == pytest.approx(0.0)
    # Given a confidence exactly on a bin edge (1/15 * 9 = 0.6): it is counted, once
    P = np.array([[0.6, 0.4], [0.9, 0.1]])
    assert expected_calibration_error(P, [1, 0]) == pytest.approx((0.6 + 0.1) / 2)
    with pytest.raises(ValueError):
        expected_calibration_error(np.eye(2), [0, 1, 1])


def test_nll_matches_definition() -> None:
    P = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    assert negative_log_likelihood(P, [0, 0, 1]) == pytest.approx(
        -(math.log(0.9) + math.log(0.2) + math.log(0.5)) / 3
    )


# --------------------------------------------------------------------------- calibration
def synthetic_similarities(
    true_t: float, n: int = 4000, k: int = 3, seed: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine-like scores whose labels are *drawn* from softmax(s / true_t): perfectly calibrated
    at true_t."""
    rng = np.random.default_rng(seed)
    S = rng.uniform(0.7, 0.9, (n, k))
    P = calibration.probabilities(S, true_t)
    y = np.array([rng.choice(k, p=row) for row in P])
    return S, y


def test_fit_temperature_recovers_the_generating_temperature() -> None:
    # Given labels sampled from softmax(s / 0.02)
    S, y = synthetic_similarities(0.02)
    # When fitting by NLL on the pooled splits
    fit = calibration.fit_temperature([(S[:2000], y[:2000]), (S[2000:], y[2000:])])
    # Then T is close to 0.02 and it beats the default 0.05 on NLL and ECE
    assert fit.temperature == pytest.approx(0.02, rel=0.15)
    rep = calibration.report("synthetic", S, y, 0.05, fit.temperature)
    assert rep.nll_after < rep.nll_before
    assert rep.ece_after < rep.ece_before
    assert min(fit.losses) == fit.loss


def test_fit_temperature_by_ece_and_grid_validation() -> None:
    S, y = synthetic_similarities(0.05, n=3000, seed=9)
    fit = calibration.fit_temperature([(S, y)], objective="ece")
    assert fit.objective == "ece"
    assert calibration.ece_at(S, y, fit.temperature) <= calibration.ece_at(S, y, 0.01)
    with pytest.raises(ValueError):
        calibration.temperature_grid(1.0, 0.1)
    with pytest.raises(ValueError):
        calibration.pooled_loss([], 0.05)


def test_probabilities_match_labelwise_softmax() -> None:
    # The calibration uses the same softmax the API serves
    rng = np.random.default_rng(2)
    S = rng.uniform(-1, 1, (6, 4)).astype(np.float32)
    assert_allclose(calibration.probabilities(S, 0.05), softmax(S, 0.05), rtol=1e-5, atol=1e-7)


def test_paired_bootstrap_brackets_the_difference() -> None:
    # Given a system that is right 90 % of the time and one that is right 60 % of the time
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 800)
    good = np.where(rng.random(800) < 0.9, y, 1 - y)
    weak = np.where(rng.random(800) < 0.6, y, 1 - y)
    # When comparing them with a paired bootstrap
    diff, lo, hi = paired_bootstrap(y, good, weak, n_classes=2, n_boot=300, seed=1)
    # Then the observed difference lies in a clearly positive interval; a system vs itself is 0
    assert lo <= diff <= hi and lo > 0.2
    assert paired_bootstrap(y, good, good, 2, n_boot=50) == (0.0, 0.0, 0.0)
