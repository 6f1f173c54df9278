"""Tests for the multiclass passive-aggressive learner against a naive reference implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from labelwise.learning.pa import PALearner, scores_to_probabilities, seed_for

DIM = 16


def _unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _clustered(rng: np.random.Generator, labels: list[str], per_label: int, noise: float = 0.2):
    centres = _unit_rows(rng, len(labels))
    xs, ys = [], []
    for centre, label in zip(centres, labels, strict=True):
        pts = centre + noise * rng.normal(size=(per_label, DIM))
        xs.append(pts / np.linalg.norm(pts, axis=1, keepdims=True))
        ys += [label] * per_label
    return np.vstack(xs).astype(np.float32), ys, centres


class ReferencePA:
    """Naive per-sample multiclass PA written from the paper, lists of floats, no vectorisation."""

    def __init__(self, dim, variant, c, num_iters, prior_strength):
        self.dim, self.variant, self.c = dim, variant, c
        self.num_iters, self.prior = num_iters, prior_strength
        self.labels: list[str] = []
        self.w: list[list[float]] = []
        self.history: list[list[list[float]]] = []  # W after every step, for averaging

    def add_labels(self, labels, vectors):
        for label, vec in zip(labels, vectors, strict=True):
            if label not in self.labels:
                self.labels.append(label)
                self.w.append([self.prior * float(v) for v in vec])
                for past in self.history:  # a new row existed "from the start" with its prior
                    past.append([self.prior * float(v) for v in vec])

    def fit(self, X, y, seed):
        rng = np.random.default_rng(seed)
        for _ in range(self.num_iters):
            for i in rng.permutation(len(y)):
                x = [float(v) for v in X[i]]
                t = self.labels.index(y[i])
                scores = [sum(a * b for a, b in zip(row, x, strict=True)) for row in self.w]
                s, best = -1, -math.inf
                for r, score in enumerate(scores):
                    if r != t and score > best:
                        s, best = r, score
                loss = max(0.0, 1.0 - (scores[t] - scores[s]))
                sq = sum(v * v for v in x)
                if self.variant == "pa":
                    tau = loss / (2 * sq)
                elif self.variant == "pa-i":
                    tau = min(self.c, loss / (2 * sq))
                else:
                    tau = loss / (2 * sq + 1 / (2 * self.c))
                for j in range(self.dim):
                    self.w[t][j] += tau * x[j]
                    self.w[s][j] -= tau * x[j]
                self.history.append([list(row) for row in self.w])

    def weights(self, average):
        if not average or not self.history:
            return np.array(self.w)
        return np.mean(np.array(self.history), axis=0)


@pytest.mark.parametrize("variant", ["pa", "pa-i", "pa-ii"])
@pytest.mark.parametrize("average", [False, True])
def test_matches_naive_reference_over_batches_and_new_labels(variant, average):
    # Given a learner and the naive reference with identical settings and label priors
    rng = np.random.default_rng(1)
    X, y, _ = _clustered(rng, ["a", "b", "c", "d"], per_label=6, noise=0.8)
    priors = _unit_rows(rng, 4)
    kwargs = dict(variant=variant, c=0.3, num_iters=3, prior_strength=0.5)
    learner = PALearner(DIM, average=average, **kwargs)
    ref = ReferencePA(DIM, variant, 0.3, 3, 0.5)
    first = [i for i, label in enumerate(y) if label in ("a", "b", "c")]
    second = [i for i, label in enumerate(y) if label in ("b", "d")]

    # When both see a first batch with three labels, then a batch introducing a fourth
    for lrn in (learner, ref):
        lrn.add_labels(["a", "b", "c"], priors[:3])
    learner.partial_fit(X[first], [y[i] for i in first], seed=seed_for("clf", 1))
    ref.fit(X[first], [y[i] for i in first], seed_for("clf", 1))
    for lrn in (learner, ref):
        lrn.add_labels(["d", "b"], priors[[3, 1]])
    learner.partial_fit(X[second], [y[i] for i in second], seed=seed_for("clf", 2))
    ref.fit(X[second], [y[i] for i in second], seed_for("clf", 2))

    # Then the weights agree (float32 storage tolerance)
    assert learner.labels == ref.labels == ["a", "b", "c", "d"]
    assert_allclose(learner.effective_weights(), ref.weights(average), rtol=1e-5, atol=1e-5)
    assert learner.steps == 3 * (len(first) + len(second))


def test_inputs_not_mutated():
    # Given inputs and copies
    rng = np.random.default_rng(2)
    X, y, centres = _clustered(rng, ["x", "y"], per_label=5)
    X_copy, y_copy, centres_copy = X.copy(), list(y), centres.copy()
    learner = PALearner(DIM)
    # When training and scoring
    learner.add_labels(["x", "y"], centres)
    learner.partial_fit(X, y, seed=1)
    learner.decision_function(X)
    # Then nothing the caller passed in changed
    assert_array_equal(X, X_copy)
    assert_array_equal(centres, centres_copy)
    assert y == y_copy


@pytest.mark.parametrize("average", [False, True])
def test_serialisation_round_trip_is_exact_and_training_continues_identically(average):
    # Given a trained learner
    rng = np.random.default_rng(3)
    X, y, centres = _clustered(rng, ["p", "q", "r"], per_label=4)
    learner = PALearner(DIM, variant="pa-ii", c=0.7, num_iters=2, average=average, prior_strength=2.0)
    learner.add_labels(["p", "q", "r"], centres)
    learner.partial_fit(X, y, seed=5)
    # When it is serialised and restored
    restored = PALearner.from_bytes(learner.to_bytes())
    # Then state is bit-identical, and both continue identically
    assert restored.labels == learner.labels
    assert_array_equal(restored.weights, learner.weights)
    assert_array_equal(restored.weighted_updates, learner.weighted_updates)
    assert (restored.steps, restored.variant, restored.c, restored.num_iters, restored.average) == (
        learner.steps,
        "pa-ii",
        0.7,
        2,
        average,
    )
    for lrn in (learner, restored):
        lrn.partial_fit(X[::-1], y[::-1], seed=6)
    assert_array_equal(restored.effective_weights(), learner.effective_weights())
    assert restored.to_bytes() == learner.to_bytes()


def test_seeded_determinism_and_seed_dependence():
    # Given the same history twice, and once with a different seed
    rng = np.random.default_rng(4)
    X, y, centres = _clustered(rng, ["a", "b", "c"], per_label=8, noise=1.0)

    def run(seed):
        learner = PALearner(DIM, num_iters=2)
        learner.add_labels(["a", "b", "c"], centres)
        learner.partial_fit(X, y, seed=seed)
        return learner

    # When trained
    one, two, other = run(seed_for("id", 1)), run(seed_for("id", 1)), run(seed_for("id", 2))
    # Then the same seed gives identical bytes; another seed (another order) differs
    assert one.to_bytes() == two.to_bytes()
    assert not np.array_equal(one.weights, other.weights)


def test_label_order_is_insertion_order_and_adding_labels_keeps_old_rows():
    # Given a trained learner with two labels
    rng = np.random.default_rng(5)
    X, y, centres = _clustered(rng, ["z", "a"], per_label=4)
    learner = PALearner(DIM)
    learner.add_labels(["z", "a"], centres)
    learner.partial_fit(X, y, seed=1)
    before = learner.weights.copy()
    # When labels are added, including an existing one
    extra = _unit_rows(rng, 2)
    learner.add_labels(["m", "z"], extra)
    # Then the order is insertion order, old rows are untouched and the new row is its prior
    assert learner.labels == ["z", "a", "m"]
    assert_array_equal(learner.weights[:2], before)
    assert_allclose(learner.weights[2], learner.prior_strength * extra[0])
    assert learner.decision_function(X).shape == (len(X), 3)


@pytest.mark.parametrize("variant", ["pa", "pa-i", "pa-ii"])
def test_loss_goes_to_zero_on_separable_data(variant):
    # Given well separated clusters
    rng = np.random.default_rng(6)
    X, y, _ = _clustered(rng, ["a", "b", "c", "d", "e"], per_label=10, noise=0.05)
    learner = PALearner(DIM, variant=variant, c=10.0, num_iters=50)
    learner.add_labels(["a", "b", "c", "d", "e"], np.zeros((5, DIM), dtype=np.float32))
    # When trained with enough passes
    learner.partial_fit(X, y, seed=1)
    # Then every example has margin >= 1 (hinge loss 0, up to rounding)
    scores = learner.decision_function(X).astype(np.float64)
    idx = np.array([learner.labels.index(label) for label in y])
    true = scores[np.arange(len(y)), idx]
    scores[np.arange(len(y)), idx] = -np.inf
    losses = np.maximum(0.0, 1.0 - (true - scores.max(axis=1)))
    assert losses.max() < 1e-3


def test_cold_start_ranks_like_zero_shot():
    # Given label embeddings and inputs, no examples yet
    rng = np.random.default_rng(7)
    label_vecs = _unit_rows(rng, 4)
    inputs = _unit_rows(rng, 20)
    learner = PALearner(DIM, prior_strength=3.0)
    learner.add_labels(["w", "x", "y", "z"], label_vecs)
    # When scoring
    scores = learner.decision_function(inputs)
    # Then scores are the scaled cosine similarities: the zero-shot ranking
    assert_allclose(scores, 3.0 * inputs @ label_vecs.T, rtol=1e-5, atol=1e-6)


def test_meaningless_labels_are_decided_by_examples():
    # Given two labels whose embeddings are almost identical (like "team1"/"team2")
    rng = np.random.default_rng(8)
    base = _unit_rows(rng, 1)[0]
    priors = np.vstack([base, base + 0.01 * rng.normal(size=DIM)]).astype(np.float32)
    priors /= np.linalg.norm(priors, axis=1, keepdims=True)
    X, y, _ = _clustered(rng, ["team1", "team2"], per_label=3, noise=0.3)
    learner = PALearner(DIM)
    learner.add_labels(["team1", "team2"], priors)
    # When a handful of examples arrive
    learner.partial_fit(X, y, seed=1)
    # Then the examples decide
    pred = np.array(learner.labels)[learner.decision_function(X).argmax(axis=1)]
    assert list(pred) == y


def test_training_requires_known_labels_and_matching_shapes():
    learner = PALearner(DIM)
    learner.add_labels(["a", "b"], np.zeros((2, DIM)))
    with pytest.raises(ValueError, match="unknown labels"):
        learner.partial_fit(np.zeros((1, DIM)), ["c"], seed=0)
    with pytest.raises(ValueError):
        learner.partial_fit(np.zeros((1, DIM + 1)), ["a"], seed=0)
    with pytest.raises(ValueError):
        learner.add_labels(["c"], np.zeros((2, DIM)))


def test_from_bytes_rejects_unknown_format():
    import io
    import json

    buffer = io.BytesIO()
    np.savez_compressed(buffer, header=np.frombuffer(json.dumps({"format": 99}).encode(), dtype=np.uint8))
    with pytest.raises(ValueError, match="unsupported"):
        PALearner.from_bytes(buffer.getvalue())


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.lists(st.floats(-50, 50, allow_nan=False), min_size=3, max_size=3), min_size=1, max_size=5),
    st.floats(0.01, 10),
)
def test_probabilities_are_distributions(rows, temperature):
    # Given arbitrary scores; When turned into probabilities; Then each row is a distribution
    probs = scores_to_probabilities(np.array(rows), temperature)
    assert probs.shape == (len(rows), 3)
    assert np.all(probs >= 0)
    assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    scores = np.array(rows)
    assert_array_equal(probs[np.arange(len(rows)), scores.argmax(axis=1)], probs.max(axis=1))


def test_c_per_rival_scales_the_cap_with_the_labels_and_round_trips() -> None:
    # Given a learner whose cap grows with the rivals of each example
    learner = PALearner(dim=4, c=0.1, c_per_rival=True)
    learner.add_labels(["a", "b"], np.eye(4, dtype=np.float32)[:2])
    assert learner.effective_c() == pytest.approx(0.1)  # one rival
    learner.add_labels(["c", "d", "e"], np.zeros((3, 4), dtype=np.float32))
    # Then with five labels each example has four rivals
    assert learner.effective_c() == pytest.approx(0.4)
    assert PALearner(dim=4, c=0.1).effective_c() == pytest.approx(0.1)
    # And the setting survives serialisation
    assert PALearner.from_bytes(learner.to_bytes()).c_per_rival is True


def test_c_per_rival_equals_a_fixed_learner_with_the_scaled_cap() -> None:
    # Given the same data, a per-rival learner with C and a fixed one with C * (n - 1)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(30, 6)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = [("a", "b", "c")[i % 3] for i in range(30)]
    scaled = PALearner(dim=6, c=0.05, c_per_rival=True)
    fixed = PALearner(dim=6, c=0.1)
    for learner in (scaled, fixed):
        learner.add_labels(["a", "b", "c"], np.zeros((3, 6), dtype=np.float32))
        learner.partial_fit(X, y, seed=11, num_iters=3)
    # Then they learn identical weights
    np.testing.assert_allclose(scaled.weights, fixed.weights, rtol=1e-6, atol=1e-7)
