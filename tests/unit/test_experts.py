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
    model = ex.bayes_ridge(gram, xty, L, 0.05, 4.0)
    ex.bayes_ridge_proba(X, model, 0.1)
    ex.bayes_ridge_loo_proba(X, y, w, model, 0.1)
    ex.ridge_log_evidence(ex.Centred.of(gram, xty), ex.zero_shot_linear_prior(L, 0.05)[:-1], 0.1)
    # Then none of the arguments changed
    for a, b in zip(before, (X, y, w, L, counts, sums, gram, xty), strict=True):
        assert_array_equal(a, b)


def test_softmax_rejects_a_non_positive_temperature():
    # Given / When / Then: a zero temperature is refused
    with pytest.raises(ValueError, match="temperature"):
        ex.softmax(np.zeros((1, 2)), 0.0)


def _replicated(X, y, w):
    """Rows repeated ``w_i`` times (integer weights): what the weighted aggregates stand for."""
    reps = np.asarray(w, dtype=int)
    return np.repeat(X, reps, axis=0), np.repeat(y, reps)


def _naive_log_evidence(X, y, prior_slope, lam, eps):
    """-K/2 log|C| - N K/2 log(sum_k r_k^T C^-1 r_k), C = I + X~ P^-1 X~^T, r_k = t_k - X~ W0_k, with
    the intercept's prior precision ``eps`` (mean 0): the marginal likelihood of the rows with
    sigma^2 integrated out (Bishop 2006, ex. 3.23), written out row by row."""
    xa = np.hstack([X, np.ones((len(X), 1))])
    precision = np.append(np.full(X.shape[1], lam), eps)
    C = np.eye(len(X)) + xa @ np.diag(1.0 / precision) @ xa.T
    R = np.eye(K)[y] - xa @ np.vstack([prior_slope, np.zeros((1, K))])
    quad = np.trace(R.T @ np.linalg.solve(C, R))
    return -0.5 * K * np.linalg.slogdet(C)[1] - 0.5 * len(X) * K * np.log(quad)


def test_ridge_log_evidence_is_the_marginal_likelihood_of_the_examples():
    # Given integer-weighted examples, their aggregates, and the same rows written out w_i times
    X, y, _, L = _data(5)
    w = np.arange(len(X)) % 3 + 1.0
    _, _, gram, xty = _aggregates(X, y, w)
    Xr, yr = _replicated(X, y, w)
    n, eps = w.sum(), 1e-7
    slope = ex.zero_shot_linear_prior(L, 0.05)[:-1]
    for prior_slope, lam in ((np.zeros((DIM, K)), 0.1), (slope, 2.0), (0.5 * slope, 0.01)):
        # When computing the log evidence from the aggregates alone (the intercept's prior flat)
        got, _ = ex.ridge_log_evidence(ex.Centred.of(gram, xty), prior_slope, lam)
        # Then it is the marginal likelihood of the rows themselves as the intercept's prior
        # precision eps goes to 0, less the constant K/2 log(eps / n) that every candidate shares
        naive = _naive_log_evidence(Xr, yr, prior_slope, lam, eps)
        assert_allclose(got + 0.5 * K * np.log(eps / n), naive, rtol=1e-5)


def test_zero_shot_linear_prior_ranks_labels_as_zero_shot_does():
    # Given unit inputs and label vectors
    X, _, _, L = _data(6, n=40)
    # When scoring with the linearised zero-shot weights
    scores = np.hstack([X, np.ones((len(X), 1))]) @ ex.zero_shot_linear_prior(L, 0.05)
    # Then every row's ranking is zero-shot's, and the scores sum to 1 like probabilities
    assert_array_equal(np.argsort(scores, axis=1), np.argsort(_cos(X, L), axis=1))
    assert_allclose(scores.sum(axis=1), 1.0)


def test_bayes_ridge_is_the_evidence_weighted_average_of_its_grid():
    # Given weighted aggregates and label vectors
    X, y, w, L = _data(7)
    _, _, gram, xty = _aggregates(X, y, w)
    # When fitting the Bayesian ridge with a penalty of 4 nats on the zero-shot priors
    model = ex.bayes_ridge(gram, xty, L, 0.05, 4.0)
    # Then its posterior is exp(evidence - penalty) normalised over the grid, and each candidate's
    # weights minimise the squared error plus lambda ||W - W0||^2 on the slope (intercept free)
    slope = ex.zero_shot_linear_prior(L, 0.05)[:-1]
    centred = ex.Centred.of(gram, xty)
    log_post, m = [], 0
    for s in ex.BAYES_RIDGE_SCALES:
        w0 = np.vstack([s * slope, np.zeros((1, K))])
        for lam in ex.BAYES_RIDGE_LAMBDAS:
            log_post.append(ex.ridge_log_evidence(centred, s * slope, lam)[0] - (4.0 if s > 0 else 0.0))
            P = np.diag(np.append(np.full(DIM, lam), 0.0))
            W = model.weights[m]
            xa = np.hstack([X, np.ones((len(X), 1))])
            grad = xa.T @ (w[:, None] * (xa @ W - np.eye(K)[y])) + P @ (W - w0)
            assert_allclose(grad, 0.0, atol=1e-9)
            m += 1
    naive = np.exp(np.array(log_post) - max(log_post))
    assert_allclose(model.posterior, naive / naive.sum(), rtol=1e-9)
    # And its probabilities are the posterior average of the candidates' softmaxes
    xa = np.hstack([X, np.ones((len(X), 1))])
    expected = sum(
        p * _naive_softmax(xa @ W, 0.1) for p, W in zip(model.posterior, model.weights, strict=True)
    )
    assert_allclose(ex.bayes_ridge_proba(X, model, 0.1), expected, rtol=1e-10)


def test_bayes_ridge_loo_equals_refitting_each_candidate_without_each_example():
    # Given weighted examples in the aggregates and the Bayesian ridge fitted on all of them
    X, y, w, L = _data(8)
    _, _, gram, xty = _aggregates(X, y, w)
    model = ex.bayes_ridge(gram, xty, L, 0.05, 4.0)
    # When scoring them leave-one-out in closed form
    got = ex.bayes_ridge_loo_proba(X, y, w, model, 0.1)
    # Then each row equals every candidate refitted without that row (same prior mean and
    # precision, intercept free), averaged with the full-data posterior
    slope = ex.zero_shot_linear_prior(L, 0.05)[:-1]
    means = [
        np.vstack([s * slope, np.zeros((1, K))])
        for s in ex.BAYES_RIDGE_SCALES
        for _ in ex.BAYES_RIDGE_LAMBDAS
    ]
    for i in range(len(X)):
        keep = np.arange(len(X)) != i
        _, _, g, b = _aggregates(X[keep], y[keep], w[keep])
        expected = 0.0
        for p, w0, lam in zip(model.posterior, means, model.lams, strict=True):
            P = np.diag(np.append(np.full(DIM, lam), 0.0))
            W = np.linalg.inv(g + P) @ (b + P @ w0)
            expected = expected + p * _naive_softmax(np.append(X[i], 1.0)[None, :] @ W, 0.1)[0]
        assert_allclose(got[i], expected, rtol=1e-7)


def _labelled_by(L, n, seed, permutation):
    """Unit inputs near the label vectors, labelled by the nearest one (permuted labels: zero-shot
    is wrong on every one of them)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    X = L[y] + 0.2 * rng.normal(size=(n, DIM))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X, np.asarray(permutation)[y]


def test_bayes_ridge_trusts_the_zero_shot_prior_only_where_the_examples_agree_with_it():
    # Given a few examples that zero-shot labels right, and the same inputs with permuted labels
    L = _unit(np.random.default_rng(9), K)
    mass = {}
    for case, permutation in (("right", [0, 1, 2]), ("wrong", [1, 2, 0])):
        X, y = _labelled_by(L, 9, 10, permutation)
        _, _, gram, xty = _aggregates(X, y, np.ones(len(X)))
        # When fitting the Bayesian ridge (at T = 0.1 the linearised zero-shot scores of these inputs
        # differ by about one between labels, the scale of one-hot targets, as the grid assumes)
        model = ex.bayes_ridge(gram, xty, L, 0.1, 4.0)
        per_scale = len(ex.BAYES_RIDGE_LAMBDAS)
        mass[case] = float(model.posterior[per_scale:].sum())  # the candidates centred on zero-shot
    # Then the zero-shot priors hold the posterior where zero-shot is right and lose it where wrong
    assert mass["right"] > 0.9
    assert mass["wrong"] < 0.1


def test_zero_shot_boost_matches_its_formula_and_fades_with_examples():
    # Given the evidence mass for zero-shot's direction and a number of examples per label
    for mass, n, strength, kappa in ((1.0, 4.0, 3.0, 4.0), (0.3, 32.0, 3.0, 4.0), (0.0, 4.0, 9.0, 16.0)):
        # When computing the boost
        got = ex.zero_shot_boost(mass, n, strength, kappa)
        # Then it is 1 + strength * mass * kappa / (kappa + n)
        assert_allclose(got, 1.0 + strength * mass * kappa / (kappa + n))
    # And it is 1 without evidence, shrinks towards 1 as examples accumulate, and refuses bad input
    assert ex.zero_shot_boost(0.0, 4.0, 3.0, 4.0) == 1.0
    assert ex.zero_shot_boost(1.0, 4.0, 3.0, 4.0) > ex.zero_shot_boost(1.0, 128.0, 3.0, 4.0) > 1.0
    with pytest.raises(ValueError):
        ex.zero_shot_boost(1.5, 4.0, 3.0, 4.0)


def test_zero_shot_prior_mass_is_the_posterior_of_the_zero_shot_centred_candidates():
    # Given a fitted Bayesian ridge
    X, y, w, L = _data(11)
    _, _, gram, xty = _aggregates(X, y, w)
    model = ex.bayes_ridge(gram, xty, L, 0.1, 4.0)
    # When reading the mass of the candidates centred on zero-shot
    mass = ex.zero_shot_prior_mass(model)
    # Then it is the posterior summed over every candidate with a scale above 0
    scales = [s for s in ex.BAYES_RIDGE_SCALES for _ in ex.BAYES_RIDGE_LAMBDAS]
    assert_allclose(mass, sum(p for p, s in zip(model.posterior, scales, strict=True) if s > 0))
    assert 0.0 <= mass <= 1.0


def test_label_projection_gives_the_centred_zero_shot_logits_and_their_aggregates():
    # Given weighted examples, their aggregates and label vectors of any length
    X, y, w, L = _data(seed=7)
    _, _, gram, xty = _aggregates(X, y, w)
    T = 0.05
    # When the inputs are projected onto the labels
    m = ex.label_projection(3.0 * L, T)
    Z = ex.label_ridge_features(X, m)
    # Then each row is the zero-shot logits, cos(x, e_j) / T, less their mean over the labels
    naive = np.array([[x @ (e / np.linalg.norm(e)) / T for e in L] for x in X])
    naive -= naive.mean(axis=1, keepdims=True)
    assert_allclose(Z, naive, rtol=1e-10, atol=1e-12)
    # And the projected aggregates are the ones of the projected examples, row by row
    za = np.hstack([Z, np.ones((len(Z), 1))])
    assert_allclose(
        m @ gram @ m.T, sum(wi * np.outer(r, r) for wi, r in zip(w, za, strict=True)), rtol=1e-10, atol=1e-10
    )
    assert_allclose(
        m @ xty, sum(wi * np.outer(r, np.eye(K)[yi]) for wi, r, yi in zip(w, za, y, strict=True)), rtol=1e-10
    )


def test_a_ridge_on_the_zero_shot_logits_can_undo_a_zero_shot_bias():
    # Given examples that zero-shot gets wrong only by a constant offset (a quarter of them)
    rng = np.random.default_rng(3)
    L = _unit(rng, 2)
    X = _unit(rng, 200)
    T = 0.05
    z = X @ L.T / T
    margin = z[:, 1] - z[:, 0]
    y = (margin > np.quantile(margin, 0.75)).astype(int)  # the boundary sits away from zero-shot's (0)
    xa = np.hstack([X, np.ones((len(X), 1))])
    gram, xty = xa.T @ xa, xa.T @ np.eye(2)[y]
    # When a ridge is fitted on the centred zero-shot logits from the aggregates alone
    m = ex.label_projection(L, T)
    W = ex.ridge_weights(m @ gram @ m.T, m @ xty, 1e-3)
    scores = np.hstack([ex.label_ridge_features(X, m), np.ones((len(X), 1))]) @ W
    # Then it classifies far better than zero-shot's own boundary
    zero_shot_acc = np.mean(z.argmax(1) == y)
    assert np.mean(scores.argmax(1) == y) > max(zero_shot_acc + 0.1, 0.9)
