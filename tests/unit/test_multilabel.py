"""Tests for the one-vs-rest multi-label learner against naive references, and its invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import minimize

from labelwise.learning import multilabel as ml
from labelwise.learning.load import load_any, peek_kind
from labelwise.learning.mixture import MixtureLearner
from labelwise.learning.multilabel import MultiLabelLearner

DIM = 12
LABELS = ["a", "b", "c"]


def _unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _data(seed: int = 0, n: int = 30) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """Label vectors and ``n`` inputs, each carrying the labels whose centre it leans towards."""
    rng = np.random.default_rng(seed)
    centres = _unit_rows(rng, len(LABELS))
    mask = rng.random((n, len(LABELS))) < 0.4
    x = mask.astype(np.float32) @ centres + 0.3 * rng.normal(size=(n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = [[label for label, on in zip(LABELS, row, strict=True) if on] for row in mask]
    return centres, x.astype(np.float32), y


def _learner(centres: np.ndarray, **kwargs: float) -> MultiLabelLearner:
    learner = MultiLabelLearner(DIM, prior_bias=0.3, prior_temperature=0.1, **kwargs)  # type: ignore[arg-type]
    learner.add_labels(LABELS, centres)
    return learner


class ReferenceBinaryPA:
    """Binary PA-I of one label written from the paper: lists of floats, one example at a time."""

    def __init__(self, vector: np.ndarray, bias: float, temperature: float, c: float) -> None:
        norm = math.sqrt(sum(float(v) ** 2 for v in vector))
        self.w = [float(v) / norm / temperature for v in vector]
        self.b = -bias / temperature
        self.c = c

    def margin(self, x: list[float]) -> float:
        return sum(a * b for a, b in zip(self.w, x, strict=True)) + self.b

    def step(self, x: list[float], target: float) -> None:
        loss = max(0.0, 1.0 - target * self.margin(x))
        tau = min(self.c, loss / (sum(v * v for v in x) + 1.0))
        self.w = [w + tau * target * v for w, v in zip(self.w, x, strict=True)]
        self.b += tau * target


def _reference_fit(centres, rows, y, rng, passes):
    """One reference learner per label, trained on ``rows`` (lists of floats) with ``passes``."""
    refs = [ReferenceBinaryPA(centres[k], 0.3, 0.1, ml.DEFAULT_C) for k in range(len(LABELS))]
    for p in range(passes):
        for j in rng.permutation(len(rows)) if p else range(len(rows)):
            for k, ref in enumerate(refs):
                ref.step(rows[j], 1.0 if LABELS[k] in y[j] else -1.0)
    return refs


def test_weights_and_heldout_counts_match_a_naive_per_label_pa_i() -> None:
    # Given a learner and naive binary PA-I learners per label, from the same zero-shot rows
    centres, X, y = _data()
    learner = _learner(centres)
    order = ml.canonical_rows(X, y)
    rows = [[float(v) for v in X[i]] for i in order]
    labels = [y[i] for i in order]
    refs = _reference_fit(centres, rows, labels, np.random.default_rng(7), passes=3)
    # When the learner learns the batch with three passes
    learner.partial_fit(X, y, seed=7, num_iters=3)
    # Then its rows and biases are the reference's
    assert_allclose(learner.weights, [r.w for r in refs], rtol=1e-9, atol=1e-9)
    assert_allclose(learner.bias, [r.b for r in refs], rtol=1e-9, atol=1e-9)
    # And its calibration counts are those of 5-fold held-out margins from the untrained rows
    pos, neg = np.zeros((len(LABELS), ml.BINS)), np.zeros((len(LABELS), ml.BINS))
    for f in range(ml.CV_FOLDS):
        rest = [j for j in range(len(rows)) if j % ml.CV_FOLDS != f]
        fold = _reference_fit(
            centres, [rows[j] for j in rest], [labels[j] for j in rest], np.random.default_rng([7, f]), 3
        )
        for j in range(f, len(rows), ml.CV_FOLDS):
            for k, ref in enumerate(fold):
                m = min(max(ref.margin(rows[j]), -ml.MARGIN_RANGE), ml.MARGIN_RANGE)
                b = min(ml.BINS - 1, math.floor((m + ml.MARGIN_RANGE) / (2 * ml.MARGIN_RANGE) * ml.BINS))
                (pos if LABELS[k] in labels[j] else neg)[k, b] += 1
    assert_array_equal(learner.positives, pos)
    assert_array_equal(learner.negatives, neg)


def test_platt_fit_is_the_minimum_of_its_objective() -> None:
    # Given bin counts of one label
    rng = np.random.default_rng(3)
    positives = rng.integers(0, 4, ml.BINS).astype(float) * (ml.bin_centres() > -1)
    negatives = rng.integers(0, 6, ml.BINS).astype(float) * (ml.bin_centres() < 1)
    # When fitted by Newton's method and by a general-purpose minimiser of the stated objective
    a, b = ml.platt_fit(positives, negatives)
    n_pos, n_neg = positives.sum(), negatives.sum()
    t_pos, t_neg = (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2)

    def objective(params: np.ndarray) -> float:
        z = params[0] * ml.bin_centres() + params[1]
        log_p, log_q = -np.logaddexp(0, -z), -np.logaddexp(0, z)
        nll = -(
            positives * (t_pos * log_p + (1 - t_pos) * log_q)
            + negatives * (t_neg * log_p + (1 - t_neg) * log_q)
        )
        return float(nll.sum() + ml.PLATT_PRIOR / 2 * ((params[0] - 1) ** 2 + params[1] ** 2))

    best = minimize(objective, np.array([1.0, 0.0]), method="BFGS", options={"gtol": 1e-10})
    # Then both find the same parameters
    assert best.x[0] > ml.MIN_SLOPE
    assert_allclose([a, b], best.x, atol=1e-4)


def test_untrained_learner_answers_the_zero_shot_sigmoid() -> None:
    # Given a learner with labels and no examples
    centres, X, _ = _data()
    learner = _learner(centres)
    # When it scores inputs
    p = learner.predict_proba(X)
    # Then each probability is sigmoid((cos(x, e_k) - b) / T), independently per label
    cos = X.astype(np.float64) @ (centres / np.linalg.norm(centres, axis=1, keepdims=True)).T
    assert_allclose(p, 1 / (1 + np.exp(-(cos - 0.3) / 0.1)), rtol=1e-5)


def test_learns_label_sets_and_scores_do_not_sum_to_one() -> None:
    # Given a learner trained on labelled sets
    centres, X, y = _data(n=120)
    learner = _learner(centres)
    learner.partial_fit(X[:90], y[:90], seed=1)
    # When it scores held-out inputs
    p = learner.predict_proba(X[90:])
    gold = np.array([[label in labels for label in LABELS] for labels in y[90:]])
    # Then most label decisions are right, and rows are not distributions
    assert ((p > 0.5) == gold).mean() > 0.8
    assert not np.allclose(p.sum(axis=1), 1.0)
    assert p.dtype == np.float32 and ((p >= 0) & (p <= 1)).all()


def test_inputs_are_not_modified() -> None:
    # Given inputs and their copies
    centres, X, y = _data()
    X_before, y_before, c_before = X.copy(), [list(t) for t in y], centres.copy()
    learner = _learner(centres)
    # When the learner learns and scores them
    learner.partial_fit(X, y, seed=1)
    learner.predict_proba(X)
    # Then nothing the caller passed changed
    assert_array_equal(X, X_before)
    assert_array_equal(centres, c_before)
    assert y == y_before


def test_serialisation_round_trip_continues_identically() -> None:
    # Given a trained learner and its serialised copy
    centres, X, y = _data(n=40)
    learner = _learner(centres)
    learner.partial_fit(X[:20], y[:20], seed=1)
    copy = MultiLabelLearner.from_bytes(learner.to_bytes())
    # When both learn the same next batch
    learner.partial_fit(X[20:], y[20:], seed=2)
    copy.partial_fit(X[20:], y[20:], seed=2)
    # Then they are the same learner
    assert copy.labels == learner.labels and copy.num_samples == learner.num_samples == 40
    assert_array_equal(copy.predict_proba(X), learner.predict_proba(X))
    assert copy.to_bytes() == learner.to_bytes()


def test_same_seed_same_learner_whatever_the_batch_order() -> None:
    # Given one batch and the same batch reversed
    centres, X, y = _data()
    a, b, c = _learner(centres), _learner(centres), _learner(centres)
    # When learned with the same seed (and once with another)
    a.partial_fit(X, y, seed=5)
    b.partial_fit(X[::-1], y[::-1], seed=5)
    c.partial_fit(X, y, seed=6)
    # Then order does not matter, the seed does
    assert_array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)


def test_new_labels_extend_the_learner_and_unknown_labels_are_refused() -> None:
    # Given a trained learner
    centres, X, y = _data()
    learner = MultiLabelLearner(DIM, prior_bias=0.3, prior_temperature=0.1)
    learner.add_labels(LABELS[:2], centres[:2])
    with pytest.raises(ValueError, match="unknown labels"):
        learner.partial_fit(X, y, seed=1)
    learner.partial_fit(X, [[label for label in t if label != "c"] for t in y], seed=1)
    # When a label is added (twice: the second time changes nothing)
    learner.add_labels(["c", "c"], np.vstack([centres[2], centres[2]]))
    learner.add_labels(["a"], centres[:1])
    # Then it is appended with its zero-shot row and can be learned
    assert learner.labels == LABELS and learner.weights.shape == (3, DIM)
    learner.partial_fit(X, y, seed=2)


def test_loading_dispatches_on_the_header_kind() -> None:
    # Given a multi-label and a single-label learner, serialised
    multi = _learner(_data()[0]).to_bytes()
    single = MixtureLearner(DIM).to_bytes()
    # When loaded through the one loading function
    # Then each comes back as its own kind
    assert peek_kind(multi) == "multilabel" and peek_kind(single) == "mixture"
    assert isinstance(load_any(multi), MultiLabelLearner)
    assert isinstance(load_any(single), MixtureLearner)
    with pytest.raises(ValueError, match="not a multi-label learner"):
        MultiLabelLearner.from_bytes(single)
