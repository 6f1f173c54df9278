"""The experts of the few-shot mixture: small numeric functions over aggregates, never examples.

Every expert maps unit input embeddings ``X`` (n, d) to class probabilities (n, K). What a
classifier stores for them are aggregates of the kind PA's weight rows already are (issue 11):

* per-label (weighted) counts ``n_k`` and embedding sums ``s_k``  -> class means;
* the second-moment matrix ``G = sum_i w_i x~_i x~_i^T`` and ``B = sum_i w_i x~_i t_i^T`` over the
  augmented inputs ``x~ = [x, 1]`` and one-hot targets ``t`` -> ridge regression in closed form.

Experts:

* **zero-shot** ``softmax(cos(x, e(label)) / T)`` (the ``/v1/classify`` scorer);
* **class mean with label prior**: the prototype of label ``k`` is
  ``m_k = (alpha e_k + s_k) / (alpha + n_k)`` — a conjugate-normal posterior mean whose prior mean is
  the label embedding with ``alpha`` pseudo-examples (Mensink et al., "Distance-based image
  classification", TPAMI 2013, nearest-class-mean; the prior as in Bayesian shrinkage) — scored by
  ``softmax(cos(x, m_k) / T)``;
* **ridge** (Hoerl & Kennard, Technometrics 1970): ``W = (G + lambda I)^-1 B``, scores ``x~ W``,
  ``softmax(scores / T)``;
* **Bayesian ridge with a zero-shot prior** (:func:`bayes_ridge`): ridge whose prior mean is either
  zero or the zero-shot scorer made linear, averaged over a small grid of prior means and strengths
  by their marginal likelihoods (MacKay, "Bayesian interpolation", Neural Computation 1992; Bishop,
  *Pattern Recognition and Machine Learning*, 2006, sec. 3.4-3.5). The marginal likelihood comes
  from ``G`` and ``B`` alone, so it does not depend on the order or grouping of the examples: with a
  few examples that zero-shot explains, the prior centred on zero-shot takes the weight; where
  zero-shot is wrong, the uninformed prior does.

Held-out scores, for the mixture's weights, come in closed form from the same aggregates:

* class mean, leave-one-out: removing example ``i`` changes only its own label's prototype,
  ``m_y^(-i) = (alpha e_y + s_y - w_i x_i) / (alpha + n_y - w_i)``;
* ridge, leave-one-out (PRESS; Allen, Technometrics 1974): with ``A = G + lambda I`` and
  ``h_i = w_i x~_i^T A^-1 x~_i``, Sherman-Morrison gives the prediction without example ``i`` as
  ``(f_i - h_i t_i) / (1 - h_i)`` where ``f_i = x~_i^T A^-1 B``.

All functions work in float64, return new arrays and never modify their arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from labelwise import numerics

F64 = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Smallest probability a log-loss reads, so one confident mistake costs at most ``-log(1e-12)``.
PROBABILITY_FLOOR = 1e-12


def softmax(logits: npt.ArrayLike, temperature: float) -> F64:
    """Row-wise ``softmax(logits / temperature)``: :func:`labelwise.numerics.softmax`; rows sum to 1.

    >>> softmax(np.array([[0.0, 0.0]]), 1.0).tolist()
    [[0.5, 0.5]]
    """
    return numerics.softmax(logits, temperature)


def log_loss(probabilities: npt.ArrayLike, targets: Sequence[int] | IntArray) -> F64:
    """Per-row ``-log p[i, y_i]``, with ``p`` floored at :data:`PROBABILITY_FLOOR`.

    >>> round(float(log_loss(np.array([[0.5, 0.5]]), [0])[0]), 4)
    0.6931
    """
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    picked = p[np.arange(p.shape[0]), y]
    return np.asarray(-np.log(np.maximum(picked, PROBABILITY_FLOOR)), dtype=np.float64)


def _unit_rows(m: F64) -> F64:
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.asarray(m / np.where(norms > 0, norms, 1.0), dtype=np.float64)


def zero_shot_proba(X: npt.ArrayLike, label_vectors: npt.ArrayLike, temperature: float) -> F64:
    """``softmax(cos(x, e_k) / T)`` per row: the zero-shot expert."""
    x = _unit_rows(np.asarray(X, dtype=np.float64))
    e = _unit_rows(np.asarray(label_vectors, dtype=np.float64))
    return softmax(x @ e.T, temperature)


def class_means(
    counts: npt.ArrayLike, sums: npt.ArrayLike, label_vectors: npt.ArrayLike, alpha: float
) -> F64:
    """Prototypes ``m_k = (alpha e_k + s_k) / (alpha + n_k)``, shape (K, d)."""
    n = np.asarray(counts, dtype=np.float64)
    s = np.asarray(sums, dtype=np.float64)
    e = np.asarray(label_vectors, dtype=np.float64)
    return np.asarray((alpha * e + s) / (alpha + n)[:, None], dtype=np.float64)


def class_mean_proba(X: npt.ArrayLike, prototypes: npt.ArrayLike, temperature: float) -> F64:
    """``softmax(cos(x, m_k) / T)`` per row."""
    x = _unit_rows(np.asarray(X, dtype=np.float64))
    m = _unit_rows(np.asarray(prototypes, dtype=np.float64))
    return softmax(x @ m.T, temperature)


def class_mean_loo_proba(
    X: npt.ArrayLike,
    targets: Sequence[int] | IntArray,
    row_weights: npt.ArrayLike,
    counts: npt.ArrayLike,
    sums: npt.ArrayLike,
    label_vectors: npt.ArrayLike,
    alpha: float,
    temperature: float,
) -> F64:
    """Leave-one-out class-mean probabilities of rows already counted in ``counts`` / ``sums``.

    Row ``i`` is scored against prototypes in which its own contribution ``w_i x_i`` (to label
    ``y_i``) is removed; the other labels' prototypes are unchanged.
    """
    x = np.asarray(X, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    w = np.asarray(row_weights, dtype=np.float64)
    n = np.asarray(counts, dtype=np.float64)
    s = np.asarray(sums, dtype=np.float64)
    e = np.asarray(label_vectors, dtype=np.float64)
    xu = _unit_rows(x)
    full = _unit_rows(class_means(n, s, e, alpha))
    logits = xu @ full.T
    own = (alpha * e[y] + s[y] - w[:, None] * x) / (alpha + n[y] - w)[:, None]
    logits[np.arange(x.shape[0]), y] = np.einsum("ij,ij->i", xu, _unit_rows(own))
    return softmax(logits, temperature)


def augment(X: npt.ArrayLike) -> F64:
    """``[x, 1]``: the inputs with a constant column, so ridge fits an intercept."""
    x = np.asarray(X, dtype=np.float64)
    return np.hstack([x, np.ones((x.shape[0], 1))])


def ridge_weights(gram: npt.ArrayLike, xty: npt.ArrayLike, lam: float) -> F64:
    """``W = (G + lambda I)^-1 B``, shape (d + 1, K); ``G``, ``B`` over augmented inputs."""
    g = np.asarray(gram, dtype=np.float64)
    b = np.asarray(xty, dtype=np.float64)
    return np.asarray(np.linalg.solve(g + lam * np.eye(g.shape[0]), b), dtype=np.float64)


def ridge_loo_scores(
    X: npt.ArrayLike,
    targets: Sequence[int] | IntArray,
    row_weights: npt.ArrayLike,
    gram: npt.ArrayLike,
    xty: npt.ArrayLike,
    lam: float,
) -> F64:
    """Leave-one-out ridge scores (n, K) of rows already included in ``gram`` / ``xty`` (PRESS).

    ``(f_i - h_i t_i) / (1 - h_i)`` with ``h_i = w_i x~_i^T (G + lambda I)^-1 x~_i``.
    """
    xa = augment(X)
    y = np.asarray(targets, dtype=np.int64)
    w = np.asarray(row_weights, dtype=np.float64)
    g = np.asarray(gram, dtype=np.float64)
    b = np.asarray(xty, dtype=np.float64)
    a_inv_x = np.asarray(np.linalg.solve(g + lam * np.eye(g.shape[0]), xa.T), dtype=np.float64).T
    f = a_inv_x @ b
    h = w * np.einsum("ij,ij->i", a_inv_x, xa)
    t = np.zeros_like(f)
    t[np.arange(xa.shape[0]), y] = 1.0
    return np.asarray((f - h[:, None] * t) / (1.0 - h)[:, None], dtype=np.float64)


def label_projection(label_vectors: npt.ArrayLike, temperature: float) -> F64:
    """``M = [[P U / T, 0], [0, 1]]``, shape (K + 1, d + 1): maps an augmented input ``[x, 1]`` to
    ``[z, 1]``, ``z`` its zero-shot logits (cosine to the unit label vectors ``U`` over ``T``)
    centred across the labels (``P = I - 11^T / K``). A ridge on ``z`` is zero-shot recalibrated by
    the examples: a K x K slope and an intercept in place of zero-shot's ``I / T`` and 0 (vector
    scaling, Guo et al. 2017; calibrate-before-use, Zhao et al. 2021), fitted from the stored
    aggregates alone: ``Z^T Z = M G M^T`` and ``Z^T Y = M B``."""
    u = np.asarray(label_vectors, dtype=np.float64)
    u = _unit_rows(u)
    k, d = u.shape
    centre = np.eye(k) - np.full((k, k), 1.0 / k)
    m = np.zeros((k + 1, d + 1))
    m[:k, :d] = centre @ u / temperature
    m[k, d] = 1.0
    return m


def label_ridge_features(X: npt.ArrayLike, projection: npt.ArrayLike) -> F64:
    """The centred zero-shot logits ``z`` (n, K) of inputs ``X`` under ``projection``
    (:func:`label_projection`), without the constant column."""
    m = np.asarray(projection, dtype=np.float64)
    return np.asarray(augment(X) @ m.T, dtype=np.float64)[:, :-1]


#: Bayesian ridge's grid (:func:`bayes_ridge`): multiples of the linearised zero-shot scorer used
#: as prior mean of the slope (0: the uninformed prior), and prior precisions ``lambda``. Fixed for
#: the ``"bayes-ridge"`` expert kind: a stored classifier answers with the grid it was trained with.
BAYES_RIDGE_SCALES = (0.0, 0.25, 0.5, 1.0)
BAYES_RIDGE_LAMBDAS = (0.01, 0.1, 1.0, 10.0)


def zero_shot_linear_prior(label_vectors: npt.ArrayLike, temperature: float) -> F64:
    """The zero-shot scorer as ridge weights ``(d + 1, K)``: its first-order Taylor expansion.

    At the uniform point, ``softmax(z)_k ~ 1/K + (z_k - mean(z)) / K``; with ``z_k = cos(x, e_k) / T``
    and unit ``x`` that is linear in ``x``: slope rows ``(e_k - mean_j e_j) / (K T)`` (unit ``e``),
    intercept ``1/K``. Its ranking of the labels is zero-shot's for every unit ``x``.
    """
    if not temperature > 0:
        raise ValueError("temperature must be positive")
    e = _unit_rows(np.asarray(label_vectors, dtype=np.float64))
    k = e.shape[0]
    slope = (e - e.mean(axis=0)).T / (k * temperature)
    return np.asarray(np.vstack([slope, np.full((1, k), 1.0 / k)]), dtype=np.float64)


@dataclass(frozen=True)
class Centred:
    """Ridge's aggregates about the (weighted) mean input: ``n = sum_i w_i``, means ``x_bar`` and
    ``t_bar``, ``G_c = sum_i w_i (x_i - x_bar)(x_i - x_bar)^T`` as eigenvalues ``mu`` and vectors
    ``Q``, ``B_c = sum_i w_i (x_i - x_bar)(t_i - t_bar)^T`` and ``tt_c = sum_i w_i ||t_i - t_bar||^2``."""

    n: float
    x_bar: F64
    t_bar: F64
    mu: F64
    q: F64
    b: F64
    tt: float

    @classmethod
    def of(cls, gram: npt.ArrayLike, xty: npt.ArrayLike) -> Centred:
        """From ``G`` and ``B`` over augmented inputs ``[x, 1]`` and one-hot targets."""
        g = np.asarray(gram, dtype=np.float64)
        b = np.asarray(xty, dtype=np.float64)
        n = float(g[-1, -1])
        k = b.shape[1]
        x_bar = g[:-1, -1] / n if n > 0 else np.zeros(g.shape[0] - 1)
        t_bar = b[-1] / n if n > 0 else np.full(k, 1.0 / max(k, 1))
        mu, q = np.linalg.eigh(g[:-1, :-1] - n * np.outer(x_bar, x_bar))
        tt = n - n * float(t_bar @ t_bar)  # sum_i w_i ||t_i||^2 = n for one-hot targets
        return cls(n, x_bar, t_bar, np.maximum(mu, 0.0), q, b[:-1] - n * np.outer(x_bar, t_bar), tt)

    def solve(self, lam: float, rhs: F64) -> F64:
        """``(G_c + lambda I)^-1 rhs``."""
        return np.asarray(self.q @ ((self.q.T @ rhs) / (self.mu + lam)[:, None]), dtype=np.float64)


def ridge_log_evidence(centred: Centred, prior_slope: npt.ArrayLike, lam: float) -> tuple[float, F64]:
    """Log marginal likelihood (up to a constant of the data) and posterior mean ``(d + 1, K)`` of
    ridge whose slope has prior mean ``W0`` and precision ``lambda``, the intercept a flat prior.

    Model: one-hot targets ``t_i ~ N(W^T x_i + c, sigma^2 / w_i)``, ``W ~ N(W0, sigma^2 / lambda)``,
    ``c`` flat, ``p(sigma^2) ~ 1 / sigma^2`` integrated out (the conjugate normal-inverse-gamma model;
    MacKay 1992; Bishop 2006, sec. 3.5 and ex. 3.23, with the intercept's prior precision taken to
    zero). With the centred aggregates (:class:`Centred`), ``W = (G_c + lambda I)^-1 (B_c + lambda
    W0)``, ``c = t_bar - W^T x_bar`` and ``E = tt_c - 2 <W, B_c> + <W, G_c W> + lambda ||W - W0||^2``:

        ``log p(T) = K/2 (d log lambda - sum_j log(mu_j + lambda)) - n K / 2 log E + const``.
    """
    w0 = np.asarray(prior_slope, dtype=np.float64)
    d, k = w0.shape
    w = centred.solve(lam, centred.b + lam * w0)
    gw = centred.q @ (centred.mu[:, None] * (centred.q.T @ w))
    energy = (
        centred.tt
        - 2.0 * float(np.sum(w * centred.b))
        + float(np.sum(w * gw))
        + lam * float(np.sum((w - w0) ** 2))
    )
    log_det = float(np.sum(np.log(centred.mu + lam)))
    log_evidence = 0.5 * k * (d * np.log(lam) - log_det) - 0.5 * centred.n * k * np.log(max(energy, 1e-300))
    intercept = centred.t_bar - centred.x_bar @ w
    return float(log_evidence), np.asarray(np.vstack([w, intercept]), dtype=np.float64)


@dataclass(frozen=True)
class BayesRidge:
    """The fitted grid of :func:`bayes_ridge`: per candidate its posterior probability, weights
    ``(d + 1, K)`` and prior precision, and the centred aggregates (for leave-one-out)."""

    posterior: F64
    weights: tuple[F64, ...]
    lams: tuple[float, ...]
    centred: Centred


def bayes_ridge(
    gram: npt.ArrayLike,
    xty: npt.ArrayLike,
    label_vectors: npt.ArrayLike,
    prior_temperature: float,
    zero_shot_penalty: float,
) -> BayesRidge:
    """Ridge over the grid :data:`BAYES_RIDGE_SCALES` x :data:`BAYES_RIDGE_LAMBDAS` (slope prior mean
    ``s`` times :func:`zero_shot_linear_prior`'s, precision ``lambda``), each candidate weighed by
    :func:`ridge_log_evidence` and a prior that takes ``zero_shot_penalty`` nats from every candidate
    centred on zero-shot (``s > 0``): zero-shot must explain the examples clearly before it is
    trusted (Bayesian model averaging; Hoeting et al., Statistical Science 1999). One
    eigendecomposition of ``G_c`` serves the whole grid."""
    centred = Centred.of(gram, xty)
    slope = zero_shot_linear_prior(label_vectors, prior_temperature)[:-1]
    log_post, weights, lams = [], [], []
    for s in BAYES_RIDGE_SCALES:
        for lam in BAYES_RIDGE_LAMBDAS:
            log_evidence, w = ridge_log_evidence(centred, s * slope, lam)
            log_post.append(log_evidence - (zero_shot_penalty if s > 0 else 0.0))
            weights.append(w)
            lams.append(lam)
    return BayesRidge(mixture_weights(-np.asarray(log_post)), tuple(weights), tuple(lams), centred)


def bayes_ridge_proba(X: npt.ArrayLike, model: BayesRidge, temperature: float) -> F64:
    """``sum_m pi_m softmax(x~ W_m / T)``: the candidates' probabilities averaged by posterior."""
    xa = augment(X)
    return np.asarray(
        sum(p * softmax(xa @ w, temperature) for p, w in zip(model.posterior, model.weights, strict=True)),
        dtype=np.float64,
    )


def bayes_ridge_loo_proba(
    X: npt.ArrayLike,
    targets: Sequence[int] | IntArray,
    row_weights: npt.ArrayLike,
    model: BayesRidge,
    temperature: float,
) -> F64:
    """Leave-one-out probabilities of rows already in the aggregates: each candidate as in
    :func:`ridge_loo_scores` (the prior acting as fixed pseudo-data; leverage
    ``h_i = w_i (1/n + (x_i - x_bar)^T (G_c + lambda I)^-1 (x_i - x_bar))``), averaged with the
    posterior of the full data (the grid's weights are not refitted without each row)."""
    x = np.asarray(X, dtype=np.float64)
    y = np.asarray(targets, dtype=np.int64)
    w = np.asarray(row_weights, dtype=np.float64)
    c = model.centred
    xa = augment(x)
    t = np.zeros((x.shape[0], model.weights[0].shape[1]))
    t[np.arange(x.shape[0]), y] = 1.0
    z = (x - c.x_bar) @ c.q
    out = np.zeros_like(t)
    for p, weights, lam in zip(model.posterior, model.weights, model.lams, strict=True):
        h = w * (1.0 / c.n + np.sum(z * z / (c.mu + lam), axis=1))
        loo = (xa @ weights - h[:, None] * t) / (1.0 - h)[:, None]
        out += p * softmax(loo, temperature)
    return np.asarray(out, dtype=np.float64)


def zero_shot_prior_mass(model: BayesRidge) -> float:
    """The posterior mass of :func:`bayes_ridge`'s candidates centred on zero-shot (scale > 0): how
    clearly the examples favour a ridge that starts from zero-shot's direction over one that starts
    from nothing. Depends on the aggregates only, never on the order of the examples."""
    per_scale = len(BAYES_RIDGE_LAMBDAS)
    scales = np.repeat(np.asarray(BAYES_RIDGE_SCALES), per_scale)
    return float(np.sum(model.posterior[scales > 0]))


def zero_shot_boost(mass: float, per_label: float, strength: float, kappa: float) -> float:
    """Factor on the zero-shot experts' prior weight: ``1 + strength * mass * kappa / (kappa + n)``.

    ``mass`` is :func:`zero_shot_prior_mass` and ``n`` the (weighted) examples per label: zero-shot
    gains weight only where the examples' evidence favours its direction, and the gain fades like a
    prior worth ``kappa`` examples per label as examples accumulate (1 when ``n`` is large).

    >>> zero_shot_boost(1.0, 4.0, 3.0, 4.0), zero_shot_boost(0.0, 4.0, 3.0, 4.0)
    (2.5, 1.0)
    """
    if not 0.0 <= mass <= 1.0 + 1e-9 or per_label < 0 or strength < 0 or kappa <= 0:
        raise ValueError("mass in [0, 1], per_label >= 0, strength >= 0 and kappa > 0 are required")
    return float(1.0 + strength * mass * kappa / (kappa + per_label))


def mixture_weights(
    cumulative_losses: npt.ArrayLike, log_prior: npt.ArrayLike | None = None, learning_rate: float = 1.0
) -> F64:
    """Exponential weights ``pi_e ∝ prior_e exp(-eta L_e)`` over experts' cumulative log-losses.

    With log-loss and learning rate ``eta = 1`` this is Bayesian model averaging: ``pi`` is the
    posterior of each expert given the held-out predictions it made (Vovk, "Aggregating strategies",
    COLT 1990; Cesa-Bianchi & Lugosi, *Prediction, Learning, and Games*, 2006, ch. 2-3). ``eta < 1``
    tempers it (a generalised or "safe" Bayesian posterior; Grünwald, "The safe Bayesian", ALT 2012):
    the weights concentrate more slowly, which matters when experts are close and their held-out
    scores depend on the order in which examples arrived. ``eta = 0`` gives the uniform average.

    >>> mixture_weights(np.zeros(4)).tolist()
    [0.25, 0.25, 0.25, 0.25]
    """
    if learning_rate < 0:
        raise ValueError("learning_rate must be >= 0")
    losses = np.asarray(cumulative_losses, dtype=np.float64)
    prior = np.zeros_like(losses) if log_prior is None else np.asarray(log_prior, dtype=np.float64)
    z = prior - learning_rate * losses
    z = z - z.max()
    e = np.exp(z)
    return np.asarray(e / e.sum(), dtype=np.float64)
