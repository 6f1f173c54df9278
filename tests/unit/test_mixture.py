"""The few-shot mixture learner: order invariance, num_iters, serialisation, migration, invariants."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from labelwise.learning import experts as ex
from labelwise.learning.mixture import (
    FORMAT_VERSION,
    MixtureLearner,
    canonical_order,
    load_learner,
    peek_format,
)
from labelwise.learning.pa import PALearner, seed_for

DIM = 8


def _clusters(seed: int = 0, n_per: int = 6, labels=("a", "b", "c")):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(labels), DIM))
    X = np.repeat(centres, n_per, axis=0) + 0.3 * rng.normal(size=(len(labels) * n_per, DIM))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = [lab for lab in labels for _ in range(n_per)]
    L = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    return X.astype(np.float32), y, L.astype(np.float32)


def _learner(L, labels=("a", "b", "c")) -> MixtureLearner:
    m = MixtureLearner(DIM)
    m.add_labels(list(labels), L)
    return m


def test_the_same_batch_in_another_order_trains_the_same_classifier():
    # Given a batch and the same batch reversed
    X, y, L = _clusters()
    a, b = _learner(L), _learner(L)
    # When each learner trains on one of them with the same seed
    a.partial_fit(X, y, seed=7)
    b.partial_fit(X[::-1], y[::-1], seed=7)
    # Then the stored classifiers are byte-identical
    assert a.to_bytes() == b.to_bytes()


def test_canonical_order_depends_on_content_only():
    # Given rows and a permutation of them
    X, y, _ = _clusters(1)
    perm = np.random.default_rng(0).permutation(len(y))
    # When ordering both canonically
    first = [(X[i].tobytes(), y[i]) for i in canonical_order(X, y)]
    second = [
        (X[perm][i].tobytes(), [y[j] for j in perm][i])
        for i in canonical_order(X[perm], [y[j] for j in perm])
    ]
    # Then the resulting sequences are equal
    assert first == second


def test_more_num_iters_moves_predictions_more():
    # Given a learner whose label vectors point the wrong way (zero-shot is wrong)
    X, y, L = _clusters(2)
    wrong = L[[1, 2, 0]]
    before = _learner(wrong).predict_proba(X)
    moved = {}
    for iters in (2, 30):
        learner = _learner(wrong)
        # When the same batch is learned with num_iters 2 and 30
        learner.partial_fit(X, y, seed=1, num_iters=iters)
        moved[iters] = float(np.abs(learner.predict_proba(X) - before).sum())
    # Then 30 moves the predictions further than 2
    assert moved[30] > moved[2] > 0


def test_zero_shot_keeps_the_weight_when_right_and_loses_it_when_wrong():
    # Given clusters whose label vectors are right, and the same with the label vectors permuted
    # (20 examples per label: with the tempered weights a wrong zero-shot loses its weight over tens
    # of examples, not a handful)
    X, y, L = _clusters(3, n_per=20)
    right, wrong = _learner(L), _learner(L[[1, 2, 0]])
    # When both learn the same examples
    right.partial_fit(X, y, seed=2)
    wrong.partial_fit(X, y, seed=2)
    zs = next(i for i, e in enumerate(right.experts) if e.kind == "zero-shot")
    # Then zero-shot holds more weight where it is right, and both classify the examples correctly
    assert right.weights()[zs] > wrong.weights()[zs]
    assert wrong.weights()[zs] < 0.01
    for learner in (right, wrong):
        predicted = np.array(learner.labels)[learner.predict_proba(X).argmax(axis=1)]
        assert np.mean(predicted == np.array(y)) >= 0.9


def test_prediction_is_the_weighted_average_of_the_experts():
    # Given a trained learner
    X, y, L = _clusters(4)
    learner = _learner(L)
    learner.partial_fit(X, y, seed=3)
    # When predicting
    P = learner.predict_proba(X)
    # Then it equals sum_e pi_e p_e computed naively, and rows sum to 1
    naive = sum(w * p for w, p in zip(learner.weights(), learner.expert_proba(X), strict=True))
    assert_allclose(P, naive, rtol=1e-5)
    assert_allclose(P.sum(axis=1), 1.0, rtol=1e-5)


def test_losses_grow_by_the_weighted_held_out_log_loss():
    # Given a learner and a batch
    X, y, L = _clusters(5)
    learner = _learner(L)
    import copy

    probe = copy.deepcopy(learner)
    # When learning the batch with num_iters 10 (weight 1.0)
    learner.partial_fit(X, y, seed=4, num_iters=10)
    # Then each expert's loss is the sum of -log p(y) of its held-out predictions (recomputed here)
    order = canonical_order(X, y)
    t = np.array([learner.labels.index(y[i]) for i in order])
    xs = X[order]
    w = np.ones(len(t))
    probe.counts = learner.counts
    probe.sums = learner.sums
    probe.gram = learner.gram
    probe.xty = learner.xty
    held = probe.heldout_proba(xs, t, w, probe.pa, [y[i] for i in order], 4, 10)
    assert_allclose(learner.losses, [ex.log_loss(p, t).sum() for p in held], rtol=1e-8)


def test_round_trip_is_exact_and_training_continues_identically():
    # Given a trained learner and its serialised copy
    X, y, L = _clusters(6)
    learner = _learner(L)
    learner.partial_fit(X[:9], y[:9], seed=5)
    restored = MixtureLearner.from_bytes(learner.to_bytes())
    # When both predict, then both learn a second batch
    assert_array_equal(restored.predict_proba(X), learner.predict_proba(X))
    learner.partial_fit(X[9:], y[9:], seed=6)
    restored.partial_fit(X[9:], y[9:], seed=6)
    # Then they stay identical
    assert restored.to_bytes() == learner.to_bytes()
    assert peek_format(learner.to_bytes()) == FORMAT_VERSION


def test_seeded_training_is_deterministic_and_inputs_are_not_modified():
    # Given a batch and copies of it
    X, y, L = _clusters(7)
    X0, y0, L0 = X.copy(), list(y), L.copy()
    # When two learners train with the same seed
    a, b = _learner(L), _learner(L)
    a.partial_fit(X, y, seed=seed_for("id", 1))
    b.partial_fit(X, y, seed=seed_for("id", 1))
    # Then they are identical and nothing passed in changed
    assert a.to_bytes() == b.to_bytes()
    assert_array_equal(X, X0)
    assert y == y0
    assert_array_equal(L, L0)


def test_a_format_one_classifier_loads_classifies_like_before_and_keeps_learning():
    # Given a classifier stored by the previous release (a bare PA learner, format 1)
    X, y, L = _clusters(8)
    pa = PALearner(DIM, c=0.1, prior_strength=20.0)
    pa.add_labels(["a", "b", "c"], L)
    pa.partial_fit(X, y, seed=1)
    old = pa.to_bytes()
    assert peek_format(old) == 1
    # When it is loaded
    migrated = load_learner(old)
    # Then it ranks like the old PA learner, and trains and saves in the new format
    assert_array_equal(migrated.predict_proba(X).argmax(axis=1), pa.decision_function(X).argmax(axis=1))
    migrated.set_label_vectors(L)
    migrated.partial_fit(X, y, seed=2)
    assert peek_format(migrated.to_bytes()) == FORMAT_VERSION
    assert load_learner(migrated.to_bytes()).to_bytes() == migrated.to_bytes()


def test_new_labels_extend_every_aggregate():
    # Given a learner that knows two labels
    X, y, L = _clusters(9)
    learner = _learner(L[:2], labels=("a", "b"))
    learner.partial_fit(X[:12], y[:12], seed=1)
    # When a third label arrives with its examples
    learner.add_labels(["c"], L[2:])
    learner.set_label_vectors(L)
    learner.partial_fit(X[12:], y[12:], seed=2)
    # Then it is predicted, and all aggregates have a column for it
    assert learner.labels == ["a", "b", "c"]
    assert learner.counts.shape == (3,) and learner.xty.shape == (DIM + 1, 3)
    assert np.mean(learner.predict_proba(X[12:]).argmax(axis=1) == 2) >= 0.8


def test_bad_input_is_refused():
    # Given a learner
    _, _, L = _clusters()
    learner = _learner(L)
    # When / Then: unknown labels, wrong shapes and foreign formats raise ValueError
    with pytest.raises(ValueError, match="unknown labels"):
        learner.partial_fit(np.zeros((1, DIM)), ["zzz"], seed=1)
    with pytest.raises(ValueError, match="shape"):
        learner.partial_fit(np.zeros((1, DIM + 1)), ["a"], seed=1)
    with pytest.raises(ValueError):
        load_learner(b"not a classifier")


def test_new_classifiers_average_pa_and_score_zero_shot_at_three_temperatures():
    # Given a new learner at the model temperature 0.05
    learner = MixtureLearner(DIM, zero_shot_temperature=0.05)
    # Then its zero-shot expert comes at 1, 2 and 4 times that temperature, and PA averages
    temperatures = [e.temperature for e in learner.experts if e.kind == "zero-shot"]
    assert_allclose(temperatures, [0.05, 0.1, 0.2])
    assert learner.pa.average


def test_a_classifier_stored_with_earlier_experts_keeps_them():
    # Given a learner stored with the earlier experts (one zero-shot temperature, PA's last weights)
    X, y, L = _clusters(7)
    earlier = [e for e in MixtureLearner(DIM).experts if e.kind != "zero-shot" or e.temperature == 0.05]
    old = MixtureLearner(DIM, experts=earlier)
    old.pa = PALearner(DIM, variant="pa-i", c=0.1, prior_strength=20.0, c_per_rival=True, average=False)
    old.add_labels(["a", "b", "c"], L)
    old.partial_fit(X, y, seed=3)
    # When it is loaded back
    loaded = load_learner(old.to_bytes())
    # Then it has the same experts, PA without averaging, and answers exactly as before
    assert loaded.experts == old.experts and not loaded.pa.average
    assert_array_equal(loaded.predict_proba(X), old.predict_proba(X))


def test_without_a_seed_the_same_examples_train_the_same_learner_in_any_order():
    # Given two learners and the same batch in two orders, no seed given
    X, y, L = _clusters(8)
    a, b = _learner(L), _learner(L)
    a.partial_fit(X, y)
    b.partial_fit(X[::-1], y[::-1])
    # Then they are identical (the seed is drawn from the content, not the order)
    assert a.to_bytes() == b.to_bytes()


def _without_header_field(blob: bytes, field: str | None = None, *, format_two: bool = False) -> bytes:
    """``blob`` as an earlier release stored it: the same arrays, the header without ``field``; with
    ``format_two``, as format 2 (experts listed without the fields format 3 added)."""
    import io
    import json

    with np.load(io.BytesIO(blob)) as npz:
        arrays = {name: npz[name] for name in npz.files}
    header = json.loads(arrays["header"].tobytes().decode())
    if field is not None:
        del header[field]
    if format_two:
        header["format"] = 2
        header.pop("zero_shot_boost", None)
        header["experts"] = [
            {k: v for k, v in e.items() if k in ("kind", "temperature", "alpha", "lam")}
            for e in header["experts"]
        ]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    out = io.BytesIO()
    np.savez_compressed(out, **arrays)
    return out.getvalue()


def _previous_release_experts() -> list:
    """The experts of format-2 classifiers, which are also today's defaults: plain ridge regressions."""
    return list(MixtureLearner(DIM, zero_shot_temperature=0.05).experts)


def _bayes_ridge_learner(L, labels=("a", "b", "c")) -> MixtureLearner:
    """A learner with the study's candidate experts: Bayesian ridge (prior weight 3) at two
    temperatures instead of the six plain ridge regressions."""
    from labelwise.learning.mixture import ExpertSpec

    kept = [e for e in MixtureLearner(DIM, zero_shot_temperature=0.05).experts if e.kind != "ridge"]
    bayes = [
        ExpertSpec("bayes-ridge", t, weight=3.0, prior_temperature=0.05, penalty=4.0) for t in (0.1, 0.3)
    ]
    learner = MixtureLearner(DIM, experts=kept[:-1] + bayes + kept[-1:])
    learner.add_labels(list(labels), L)
    return learner


def test_a_classifier_keeps_the_learning_rate_it_was_stored_with():
    # Given a learner with a learning rate other than today's default, trained
    X, y, L = _clusters(9)
    learner = MixtureLearner(DIM, learning_rate=0.5)
    learner.add_labels(["a", "b", "c"], L)
    learner.partial_fit(X, y, seed=2)
    # When it is stored and loaded back
    loaded = load_learner(learner.to_bytes())
    # Then it weighs its experts as before
    assert loaded.learning_rate == 0.5
    assert_array_equal(loaded.weights(), learner.weights())
    assert_array_equal(loaded.predict_proba(X), learner.predict_proba(X))


def test_a_classifier_stored_before_the_header_held_a_learning_rate_loads_with_the_old_one():
    # Given a classifier stored by an earlier release (format 2, no learning rate in its header)
    X, y, L = _clusters(10)
    old = MixtureLearner(DIM, learning_rate=0.02, experts=_previous_release_experts())
    old.add_labels(["a", "b", "c"], L)
    old.partial_fit(X, y, seed=4)
    blob = _without_header_field(old.to_bytes(), "learning_rate", format_two=True)
    assert peek_format(blob) == 2
    # When it is loaded
    loaded = load_learner(blob)
    # Then it keeps that release's learning rate (0.02) and answers exactly as it did
    assert loaded.learning_rate == 0.02
    assert_array_equal(loaded.predict_proba(X), old.predict_proba(X))
    with pytest.raises(ValueError):
        MixtureLearner(DIM, learning_rate=-1.0)


def test_a_format_two_classifier_loads_classifies_as_before_and_keeps_learning_as_format_three():
    # Given a classifier of the previous release: format 2, six plain ridge regressions (today's
    # default experts too)
    X, y, L = _clusters(11)
    old = MixtureLearner(DIM, experts=_previous_release_experts())
    old.add_labels(["a", "b", "c"], L)
    old.partial_fit(X[:9], y[:9], seed=6)
    blob = _without_header_field(old.to_bytes(), format_two=True)
    # When it is loaded, classifies, learns another batch and is stored again
    loaded = load_learner(blob)
    answered = loaded.predict_proba(X)
    expected = old.predict_proba(X)
    loaded.partial_fit(X[9:], y[9:], seed=7)
    old.partial_fit(X[9:], y[9:], seed=7)
    # Then it kept its experts, answered exactly as before, learns as the old one does, and is
    # stored as format 3
    assert loaded.experts == old.experts
    assert all(e.weight == 1.0 for e in loaded.experts)
    assert_array_equal(answered, expected)
    assert_allclose(loaded.predict_proba(X), old.predict_proba(X), rtol=1e-6)
    assert peek_format(loaded.to_bytes()) == FORMAT_VERSION == 3


def test_new_classifiers_keep_the_six_plain_ridge_experts_and_prior_weight_one():
    # Given a new learner at the model temperature 0.05
    learner = MixtureLearner(DIM, zero_shot_temperature=0.05)
    ridge = [(e.lam, e.temperature) for e in learner.experts if e.kind == "ridge"]
    # Then it has the six ridge regressions, no Bayesian ridge (it failed the test group's gate),
    # and every expert has prior weight 1
    assert sorted(ridge) == [(lam, t) for lam in (0.1, 1.0, 10.0) for t in (0.1, 0.3)]
    assert all(e.kind != "bayes-ridge" and e.weight == 1.0 for e in learner.experts)


def test_new_classifiers_score_pa_at_temperature_two():
    # Given a new learner
    learner = MixtureLearner(DIM, zero_shot_temperature=0.05)
    # Then its PA expert votes at T = 2 (PA is the one order-dependent expert; at T = 1 the same
    # examples over three calls disagreed with one call on up to 1.4% of the development inputs)
    assert [e.temperature for e in learner.experts if e.kind == "pa"] == [2.0]


def test_a_classifier_stored_with_pa_at_temperature_one_keeps_it_and_its_answers():
    # Given a classifier stored by the previous release, with PA voting at T = 1
    from dataclasses import replace

    X, y, L = _clusters(12)
    experts = [replace(e, temperature=1.0) if e.kind == "pa" else e for e in MixtureLearner(DIM).experts]
    old = MixtureLearner(DIM, experts=experts)
    old.add_labels(["a", "b", "c"], L)
    old.partial_fit(X[::2], y[::2], seed=5)
    # When it is loaded back and learns another batch, as it would have before
    loaded = load_learner(old.to_bytes())
    assert_array_equal(loaded.predict_proba(X), old.predict_proba(X))
    loaded.partial_fit(X[1::2], y[1::2], seed=6)
    old.partial_fit(X[1::2], y[1::2], seed=6)
    # Then PA still votes at T = 1 and the answers are those of the previous release
    assert [e.temperature for e in loaded.experts if e.kind == "pa"] == [1.0]
    assert_array_equal(loaded.predict_proba(X), old.predict_proba(X))


def test_a_classifier_with_bayesian_ridge_experts_round_trips_and_keeps_learning():
    # Given a learner with the study's Bayesian ridge experts, trained, and its stored copy
    X, y, L = _clusters(14)
    learner = _bayes_ridge_learner(L)
    learner.partial_fit(X[:9], y[:9], seed=5)
    loaded = load_learner(learner.to_bytes())
    # When both learn the same next batch
    learner.partial_fit(X[9:], y[9:], seed=6)
    loaded.partial_fit(X[9:], y[9:], seed=6)
    # Then the copy kept the experts and their prior weights, and answers exactly as the original
    assert loaded.experts == learner.experts
    assert [e.weight for e in loaded.experts].count(3.0) == 2
    assert_array_equal(loaded.predict_proba(X), learner.predict_proba(X))


def test_mixture_weights_are_prior_weight_times_tempered_exponential_weights():
    # Given a trained learner whose experts have prior weights 1 and 3
    X, y, L = _clusters(12)
    learner = _bayes_ridge_learner(L)
    learner.partial_fit(X, y, seed=8)
    # When reading its weights
    got = learner.weights()
    # Then they are weight_e * exp(-eta L_e), normalised
    prior = np.array([e.weight for e in learner.experts])
    naive = prior * np.exp(-learner.learning_rate * (learner.losses - learner.losses.min()))
    assert set(prior) == {1.0, 3.0}
    assert_allclose(got, naive / naive.sum(), rtol=1e-12)


def _one_call_and_three(make, seed: int):
    """The same examples learned by ``make(L)`` in one call, and by another over three calls in a
    shuffled order: ``(X, one, three)``."""
    X, y, L = _clusters(seed, n_per=9)
    one, three = make(L), make(L)
    one.partial_fit(X, y)
    perm = np.random.default_rng(seed).permutation(len(y))
    for part in np.array_split(perm, 3):
        three.partial_fit(X[part], [y[i] for i in part])
    return X, one, three


def test_bayesian_ridge_answers_the_same_for_one_call_or_three():
    # Given the same examples learned in one call, and over three calls in another order
    X, one, three = _one_call_and_three(_bayes_ridge_learner, 13)
    # When reading the Bayesian ridge experts' probabilities
    which = [i for i, e in enumerate(one.experts) if e.kind == "bayes-ridge"]
    P1, P3 = one.expert_proba(X), three.expert_proba(X)
    # Then they are equal: the expert reads only the aggregates
    for i in which:
        assert_allclose(P1[i], P3[i], rtol=1e-8, atol=1e-12)


def test_new_classifiers_boost_zero_shot_by_the_evidence_and_store_the_boost():
    # Given a new learner, and the same examples labelled as zero-shot says and permuted
    X, y, L = _clusters(15, n_per=4)
    right, wrong = _learner(L), _learner(L[[1, 2, 0]])
    right.partial_fit(X, y, seed=1)
    wrong.partial_fit(X, y, seed=1)
    zs = [i for i, e in enumerate(right.experts) if e.kind == "zero-shot"]
    others = [i for i, e in enumerate(right.experts) if e.kind != "zero-shot"]
    # When reading the zero-shot factors
    fr, fw = right.zero_shot_factors(), wrong.zero_shot_factors()
    # Then only zero-shot is boosted, more where the examples follow it, and the weights are
    # weight * factor * exp(-eta L), normalised
    assert right.boost is not None and right.boost.strength == 3.0 and right.boost.kappa == 4.0
    assert np.all(fr[others] == 1.0) and np.all(fr[zs] == fr[zs[0]])
    assert fr[zs[0]] > fw[zs[0]] >= 1.0
    naive = fr * np.exp(-right.learning_rate * (right.losses - right.losses.min()))
    assert_allclose(right.weights(), naive / naive.sum(), rtol=1e-12)
    # And the boost survives a round trip
    loaded = load_learner(right.to_bytes())
    assert loaded.boost == right.boost
    assert_array_equal(loaded.predict_proba(X), right.predict_proba(X))


def test_the_zero_shot_boost_is_the_same_for_one_call_or_three():
    # Given the same examples in one call, and over three calls in another order
    _, one, three = _one_call_and_three(_learner, 16)
    # Then the boost, read from the aggregates only, is the same
    assert_allclose(one.zero_shot_factors(), three.zero_shot_factors(), rtol=1e-9)


def test_a_classifier_stored_without_a_boost_has_none():
    # Given a classifier whose header holds no boost (format 2, or a study's explicit experts)
    X, y, L = _clusters(17)
    learner = _learner(L)
    learner.partial_fit(X, y, seed=3)
    blob = _without_header_field(learner.to_bytes(), "zero_shot_boost")
    # When it is loaded
    loaded = load_learner(blob)
    # Then zero-shot keeps weight 1 and the weights are those of the losses alone
    assert loaded.boost is None
    assert np.all(loaded.zero_shot_factors() == 1.0)
