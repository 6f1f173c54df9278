"""The mixture's experts against naive reference implementations, and their invariants."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from labelwise.learning import experts as ex

DIM, K = 6, 3


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _data(seed: int = 0, n: int = 12):
    rng = np.random.default_rng(seed)
    X = _unit(rng, n)
    y = np.arange(n) % K
    w = rng.uniform(0.5, 2.0, size=n)
    L = _unit(rng, K)
    return X, y, w, L


def _aggregates(X, y, w):
    onehot = np.eye(K)[y]
    counts = (w[:, None] * onehot).sum(axis=0)
    sums = (w[:, None] * onehot).T @ X
    xa = np.hstack([X, np.ones((len(X), 1))])
    gram = (w[:, None] * xa).T @ xa
    xty = (w[:, None] * xa).T @ onehot
    return counts, sums, gram, xty


def _naive_softmax(z, t):
    e = np.exp((z - z.max(axis=1, keepdims=True)) / t)
    return e / e.sum(axis=1, keepdims=True)


def _cos(a, b):
    return (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T


def test_class_mean_loo_equals_refitting_without_each_example():
    # Given weighted examples already in the class aggregates
    X, y, w, L = _data()
    counts, sums, _, _ = _aggregates(X, y, w)
    # When scoring them leave-one-out in closed form
    got = ex.class_mean_loo_proba(X, y, w, counts, sums, L, alpha=1.5, temperature=0.05)
    # Then each row equals prototypes recomputed from scratch without that example
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        c, s, _, _ = _aggregates(X[keep], y[keep], w[keep])
        protos = (1.5 * L + s) / (1.5 + c)[:, None]
        assert_allclose(got[i], _naive_softmax(_cos(X[i : i + 1], protos), 0.05)[0], rtol=1e-10)


def test_ridge_loo_equals_refitting_without_each_example():
    # Given weighted examples in ridge's second moments
    X, y, w, _ = _data(1)
    _, _, gram, xty = _aggregates(X, y, w)
    # When computing PRESS leave-one-out scores
    got = ex.ridge_loo_scores(X, y, w, gram, xty, lam=0.7)
    # Then each row equals the ridge refitted without that example
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        _, _, g, b = _aggregates(X[keep], y[keep], w[keep])
        W = np.linalg.inv(g + 0.7 * np.eye(DIM + 1)) @ b
        assert_allclose(got[i], np.append(X[i], 1.0) @ W, rtol=1e-8, atol=1e-10)


def test_ridge_weights_solve_the_regularised_normal_equations():
    # Given the aggregates of a weighted sample
    X, y, w, _ = _data(2)
    _, _, gram, xty = _aggregates(X, y, w)
    # When solving for the ridge weights
    W = ex.ridge_weights(gram, xty, lam=0.3)
    # Then they minimise sum_i w_i ||x~_i W - t_i||^2 + 0.3 ||W||^2 (gradient is zero)
    xa = np.hstack([X, np.ones((len(X), 1))])
    grad = xa.T @ (w[:, None] * (xa @ W - np.eye(K)[y])) + 0.3 * W
    assert_allclose(grad, 0.0, atol=1e-10)


def test_zero_shot_and_class_mean_are_cosine_softmaxes():
    # Given inputs and label vectors that are not unit length
    X, _, _, L = _data(3)
    # When scoring
    zs = ex.zero_shot_proba(3 * X, 2 * L, 0.05)
    cm = ex.class_mean_proba(X, 5 * L, 0.05)
    # Then both are softmax(cos / T), rows summing to 1
    assert_allclose(zs, _naive_softmax(_cos(X, L), 0.05), rtol=1e-10)
    assert_allclose(cm, zs, rtol=1e-10)
    assert_allclose(zs.sum(axis=1), 1.0)


def test_log_loss_and_mixture_weights_match_their_definitions():
    # Given probabilities and cumulative losses
    P = np.array([[0.7, 0.3], [0.0, 1.0]])
    losses = np.array([3.0, 1.0, 2.0])
    # When computing the log-loss and exponential weights
    ll = ex.log_loss(P, [0, 0])
    pi = ex.mixture_weights(losses)
    # Then they are -log p_y (floored) and exp(-L) normalised, invariant to a shift of all losses
    assert_allclose(ll, [-np.log(0.7), -np.log(ex.PROBABILITY_FLOOR)])
    assert_allclose(pi, np.exp(-losses) / np.exp(-losses).sum())
    assert_allclose(ex.mixture_weights(losses + 1000.0), pi)


def test_tempered_mixture_weights_match_the_naive_formula_and_its_limits():
    # Given cumulative losses and a log prior
    losses = np.array([30.0, 10.0, 20.0, 10.5])
    prior = np.log([0.1, 0.2, 0.3, 0.4])
    for eta in (0.0, 0.02, 0.5, 1.0):
        # When the weights are tempered by eta
        pi = ex.mixture_weights(losses, prior, learning_rate=eta)
        # Then they are prior * exp(-eta L), normalised
        naive = np.exp(prior) * np.exp(-eta * losses)
        assert_allclose(pi, naive / naive.sum(), rtol=1e-12)
    # And eta = 0 is the prior, a smaller eta is closer to it, and a negative one is refused
    assert_allclose(ex.mixture_weights(losses, learning_rate=0.0), np.full(4, 0.25))
    soft, hard = ex.mixture_weights(losses, learning_rate=0.02), ex.mixture_weights(losses)
    assert soft.max() < hard.max()
    with pytest.raises(ValueError):
        ex.mixture_weights(losses, learning_rate=-0.1)


def test_functions_do_not_modify_their_inputs():
    # Given inputs and aggregates, and copies of them
    X, y, w, L = _data(4)
    counts, sums, gram, xty = _aggregates(X, y, w)
    before = [a.copy() for a in (X, y, w, L, counts, sums, gram, xty)]
    # When every expert function runs
    ex.class_mean_loo_proba(X, y, w, counts, sums, L, 1.0, 0.05)
    ex.ridge_loo_scores(X, y, w, gram, xty, 1.0)
    ex.ridge_weights(gram, xty, 1.0)
    ex.zero_shot_proba(X, L, 0.05)
    ex.class_mean_proba(X, ex.class_means(counts, sums, L, 1.0), 0.05)
    # Then none of the arguments changed
    for a, b in zip(before, (X, y, w, L, counts, sums, gram, xty), strict=True):
        assert_array_equal(a, b)


def test_softmax_rejects_a_non_positive_temperature():
    # Given / When / Then: a zero temperature is refused
    with pytest.raises(ValueError, match="temperature"):
        ex.softmax(np.zeros((1, 2)), 0.0)
