"""Tests for the few-shot evaluation helpers (splits, sampling, API replay, aggregation)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from labelwise.classify.fewshot import new_learner
from labelwise.evaluation import fewshot as fs
from labelwise.learning.mixture import load_learner

LABELS = ["a"] * 30 + ["b"] * 12 + ["c"] * 6


def _unit(rng: np.random.Generator, n: int, dim: int = 8) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# -- splits -------------------------------------------------------------------------------------


def test_splits_partition_the_set_are_stratified_and_deterministic():
    # Given an imbalanced label list
    # When splitting twice with the same seed
    s1 = fs.make_splits(LABELS, test_fraction=0.25, test_max=100, val_fraction=0.25, seed=3)
    s2 = fs.make_splits(LABELS, test_fraction=0.25, test_max=100, val_fraction=0.25, seed=3)
    # Then the splits are identical, disjoint and cover every index
    assert s1 == s2
    allidx = s1.pool + s1.val + s1.test
    assert sorted(allidx) == list(range(len(LABELS)))
    # And the test split keeps the class proportions (12 of 48: 7.5/3/1.5 -> largest remainder)
    counts = Counter(LABELS[i] for i in s1.test)
    assert sum(counts.values()) == 12
    assert counts["a"] in (7, 8) and counts["b"] == 3 and counts["c"] in (1, 2)
    # And final training draws from pool + validation, tuning from the pool only
    assert set(s1.train_candidates(True)) == set(s1.pool) | set(s1.val)
    assert s1.train_candidates(False) == s1.pool
    assert s1.eval_indices(True) == s1.test and s1.eval_indices(False) == s1.val


def test_test_split_is_capped_by_test_max():
    s = fs.make_splits(LABELS, test_fraction=0.5, test_max=10)
    assert len(s.test) == 10


# -- sampling -----------------------------------------------------------------------------------


def test_sampling_takes_k_per_label_deterministically_and_reports_caps():
    candidates = list(range(len(LABELS)))
    # When drawing 8 per label
    idx, taken = fs.sample_per_label(LABELS, candidates, 8, seed=1)
    # Then each label gets 8 unless it has fewer (c has 6: capped and reported)
    assert Counter(LABELS[i] for i in idx) == {"a": 8, "b": 8, "c": 6}
    assert taken == {"a": 8, "b": 8, "c": 6}
    assert len(set(idx)) == len(idx)
    # And the draw is deterministic for a seed and differs across seeds
    assert fs.sample_per_label(LABELS, candidates, 8, seed=1) == (idx, taken)
    assert fs.sample_per_label(LABELS, candidates, 8, seed=2)[0] != idx


def test_sampling_is_nested_across_sizes_and_only_uses_candidates():
    candidates = [i for i in range(len(LABELS)) if i % 3 != 0]
    small, _ = fs.sample_per_label(LABELS, candidates, 2, seed=4)
    large, _ = fs.sample_per_label(LABELS, candidates, 5, seed=4)
    assert set(small) <= set(large)
    assert set(large) <= set(candidates)
    with pytest.raises(ValueError):
        fs.sample_per_label(LABELS, candidates, 0, seed=4)


def test_sample_order_mixes_labels():
    idx, _ = fs.sample_per_label(LABELS, list(range(len(LABELS))), 6, seed=0)
    first = [LABELS[i] for i in idx[:6]]
    assert len(set(first)) > 1  # not grouped by label


# -- replay of the API's learner ----------------------------------------------------------------


def test_replay_matches_a_manual_create_then_update_sequence():
    # Given 7 examples, batches of 4 (create with 4, update with 3 after a serialisation round trip)
    rng = np.random.default_rng(0)
    X = _unit(rng, 7)
    y = ["a", "b", "a", "b", "c", "c", "a"]
    vecs = {lab: v for lab, v in zip("abc", _unit(rng, 3), strict=True)}

    def label_vectors(labels):
        return np.array([vecs[lab] for lab in labels])

    # When replaying
    got = fs.replay_product(X, y, label_vectors, "cid", 0.05, num_iters=3, batch=4)
    # Then it equals the manual sequence the service performs
    ref = new_learner(8, 0.05)
    ref.add_labels(["a", "b"], label_vectors(["a", "b"]))
    ref.set_label_vectors(label_vectors(["a", "b"]))
    ref.partial_fit(X[:4], y[:4], num_iters=3)  # seeded from the content, as the service does
    ref = load_learner(ref.to_bytes())
    ref.add_labels(["c"], label_vectors(["c"]))
    ref.set_label_vectors(label_vectors(["a", "b", "c"]))
    ref.partial_fit(X[4:], y[4:], num_iters=3)
    assert got.labels == ref.labels == ["a", "b", "c"]
    assert got.to_bytes() == ref.to_bytes()
    assert got.num_samples == 7


def test_learner_probabilities_follow_class_order():
    # Given a learner whose label order is ["y", "x"]
    rng = np.random.default_rng(1)
    X = _unit(rng, 5)
    vecs = dict(zip(["y", "x"], _unit(rng, 2), strict=True))
    learner = fs.replay_product(X[:2], ["y", "x"], lambda ls: np.array([vecs[lab] for lab in ls]), "k", 0.05)
    # When asking for columns in another order, with a label never trained
    P = fs.learner_probabilities(learner, X, ["x", "y", "never"])
    # Then columns follow the request and the unknown label gets 0
    assert P.shape == (5, 3)
    assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    assert_array_equal(P[:, 2], 0.0)
    assert_allclose(P[:, :2], learner.predict_proba(X)[:, ::-1])


def test_split_calls_partition_a_shuffle_and_agreement_counts_top_labels():
    # Given 10 examples cut into 3 calls
    parts = fs.split_calls(10, 3, seed=4)
    # Then the calls cover every example once, in an order other than the original
    flat = [i for part in parts for i in part]
    assert sorted(flat) == list(range(10)) and flat != list(range(10)) and len(parts) == 3
    # And agreement is the share of rows with the same argmax
    assert fs.agreement([[0.9, 0.1], [0.2, 0.8]], [[0.6, 0.4], [0.7, 0.3]]) == 0.5


def test_split_calls_first_call_holds_two_labels_as_creating_a_classifier_requires():
    # Given 4 examples of each of two labels, over many seeds (some shuffles put one label in front)
    labels = ["a"] * 4 + ["b"] * 4
    unguarded = [fs.split_calls(8, 3, seed) for seed in range(40)]
    assert any(len({labels[i] for i in parts[0]}) == 1 for parts in unguarded)
    for seed in range(40):
        # When the calls are cut knowing the labels
        parts = fs.split_calls(8, 3, seed, labels)
        # Then the first call has both labels and every example is still sent exactly once
        assert len({labels[i] for i in parts[0]}) == 2
        assert sorted(i for part in parts for i in part) == list(range(8))
        assert [len(part) for part in parts] == [len(part) for part in unguarded[seed]]
    # And a shuffle that already has two labels in front is left as it is
    ok = next(s for s in range(40) if len({labels[i] for i in unguarded[s][0]}) == 2)
    assert fs.split_calls(8, 3, ok, labels) == unguarded[ok]


def test_class_mean_baseline_starts_at_the_label_prior_and_follows_examples():
    # Given two label vectors and examples that sit on the opposite labels' vectors
    L = np.eye(2, dtype=np.float32)
    Xte = np.eye(2, dtype=np.float32)
    # When the class mean has no examples of a label, it is the prior; with many, the examples
    P0 = fs.class_mean_probabilities(np.zeros((0, 2), np.float32), np.zeros(0, np.int64), Xte, L)
    Xtr = np.repeat(np.eye(2, dtype=np.float32)[::-1], 10, axis=0)
    P1 = fs.class_mean_probabilities(Xtr, np.repeat([0, 1], 10), Xte, L)
    # Then zero-shot-like first, flipped after
    assert_array_equal(P0.argmax(axis=1), [0, 1])
    assert_array_equal(P1.argmax(axis=1), [1, 0])


# -- baselines ----------------------------------------------------------------------------------


def test_zero_shot_probabilities_are_a_cosine_softmax():
    X = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    L = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    P = fs.zero_shot_probabilities(X, L, 1.0)
    assert_allclose(P[0], [np.e / (np.e + 1), 1 / (np.e + 1)], rtol=1e-6)
    assert P[1].argmax() == 1


def test_offline_logreg_separates_clusters_and_keeps_columns():
    rng = np.random.default_rng(2)
    centres = _unit(rng, 3)
    X = np.repeat(centres, 10, axis=0) + 0.05 * rng.normal(size=(30, 8))
    y = np.repeat(np.arange(3), 10)
    P = fs.offline_logreg(X[y != 1], y[y != 1], X, 3)
    assert P.shape == (30, 3)
    assert_array_equal(P[:, 1], 0.0)  # a class absent from training gets no probability
    assert (P[y == 0].argmax(axis=1) == 0).all() and (P[y == 2].argmax(axis=1) == 2).all()


# -- aggregation and goals ----------------------------------------------------------------------


def _r(ds, method, k, seed, f1, per_label=None):
    return fs.Result(ds, method, k, seed, f1, ece=0.1, per_label=per_label or {})


def test_aggregate_means_sd_and_caps():
    results = [
        _r("d", "zero-shot", 0, 0, 0.70),
        _r("d", "few-shot", 8, 0, 0.60, {"a": 8, "b": 8}),
        _r("d", "few-shot", 8, 1, 0.80, {"a": 8, "b": 8}),
        _r("d", "few-shot", 64, 0, 0.90, {"a": 64, "b": 40}),
    ]
    aggs = fs.aggregate(results)
    table = fs.lookup(aggs)
    a8 = table[("d", "few-shot", 8)]
    assert a8.n == 2 and a8.mean == pytest.approx(0.70) and a8.sd == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert not a8.capped
    assert table[("d", "few-shot", 64)].capped and table[("d", "few-shot", 64)].sd == 0.0
    assert table[("d", "zero-shot", 0)].ece == pytest.approx(0.1)
    assert [a.method for a in aggs] == ["zero-shot", "few-shot", "few-shot"]  # first-seen order


def test_check_goals():
    # Given few-shot, zero-shot and logistic regression results at small and large sizes
    results = [
        _r("d", "zero-shot", 0, 0, 0.70),
        _r("d", "few-shot", 8, 0, 0.705),
        _r("d", "logreg", 8, 0, 0.72),
        _r("d", "few-shot", 128, 0, 0.80),
        _r("d", "logreg", 128, 0, 0.815),
        _r("e", "zero-shot", 0, 0, 0.70),
        _r("e", "few-shot", 8, 0, 0.675),
        _r("e", "logreg", 8, 0, 0.60),
    ]
    # When checking the goals
    small, large = fs.check_goals(fs.aggregate(results))
    # Then small sizes compare with the better reference (slack 0.02) and 128 with logreg (0.01)
    ok = {(c.dataset, c.k): c.ok for c in small}
    assert ok == {("d", 8): True, ("e", 8): False}
    assert {(c.dataset, c.k): c.reference for c in small}[("d", 8)] == pytest.approx(0.72)
    assert len(large) == 1 and not large[0].ok and large[0].margin == pytest.approx(-0.015)


# -- embedding cache ----------------------------------------------------------------------------


def test_cached_embeddings_compute_once(tmp_path):
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    texts = ["a", "bb", "ccc"]
    first = fs.cached_embeddings(embed, texts, tmp_path, "m", chunk=2)
    again = fs.cached_embeddings(embed, texts, tmp_path, "m", chunk=2)
    assert_array_equal(first, again)
    assert calls == [["a", "bb"], ["ccc"]]  # chunked, and the second call hit the cache
    fs.cached_embeddings(embed, ["other"], tmp_path, "m")
    assert len(calls) == 3  # different texts, different file
