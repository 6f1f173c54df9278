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
  ``softmax(scores / T)``.

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
