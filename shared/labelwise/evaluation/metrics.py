"""Classification metrics in plain numpy: accuracy, macro-F1, expected calibration error, NLL.

``y_true`` and ``y_pred`` are integer class indices; ``probs`` is ``(n, n_classes)`` with rows
summing to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.floating]

ECE_BINS = 15


def _ints(values: Sequence[int] | npt.ArrayLike) -> IntArray:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def accuracy(y_true: Sequence[int] | npt.ArrayLike, y_pred: Sequence[int] | npt.ArrayLike) -> float:
    t, p = _ints(y_true), _ints(y_pred)
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred differ in length")
    if t.size == 0:
        raise ValueError("no examples")
    return float(np.mean(t == p))


def f1_per_class(
    y_true: Sequence[int] | npt.ArrayLike, y_pred: Sequence[int] | npt.ArrayLike, n_classes: int | None = None
) -> npt.NDArray[np.float64]:
    """F1 of each class; a class with no true and no predicted examples scores 0 (like
    scikit-learn's ``zero_division=0``)."""
    t, p = _ints(y_true), _ints(y_pred)
    if t.shape != p.shape:
        raise ValueError("y_true and y_pred differ in length")
    k = n_classes if n_classes is not None else int(max(t.max(initial=-1), p.max(initial=-1)) + 1)
    tp = np.bincount(t[t == p], minlength=k)[:k].astype(np.float64)
    n_true = np.bincount(t, minlength=k)[:k].astype(np.float64)
    n_pred = np.bincount(p, minlength=k)[:k].astype(np.float64)
    denom = n_true + n_pred
    return np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)


def macro_f1(
    y_true: Sequence[int] | npt.ArrayLike, y_pred: Sequence[int] | npt.ArrayLike, n_classes: int | None = None
) -> float:
    """Unweighted mean of per-class F1 over the classes present in ``y_true`` or ``y_pred``
    (scikit-learn's ``f1_score(average="macro")``), or over ``range(n_classes)`` when given."""
    t, p = _ints(y_true), _ints(y_pred)
    if t.size == 0:
        raise ValueError("no examples")
    f1 = f1_per_class(t, p, n_classes)
    if n_classes is None:
        present = np.union1d(t, p)
        return float(f1[present].mean())
    return float(f1.mean())


def expected_calibration_error(
    probs: npt.ArrayLike, y_true: Sequence[int] | npt.ArrayLike, n_bins: int = ECE_BINS
) -> float:
    """ECE of the top-label confidence (Guo et al., 2017, eq. 3): equal-width bins over [0, 1],
    ``sum_b |B_b|/n * |acc(B_b) - conf(B_b)|``. A confidence of exactly 0 goes to the first bin,
    a bin's upper edge is inclusive (``(lo, hi]``)."""
    P = np.asarray(probs, dtype=np.float64)
    t = _ints(y_true)
    if P.ndim != 2 or P.shape[0] != t.size:
        raise ValueError("probs must be (n, n_classes) with n = len(y_true)")
    if t.size == 0:
        raise ValueError("no examples")
    conf = P.max(axis=1)
    correct = (P.argmax(axis=1) == t).astype(np.float64)
    # bin b holds conf in (b/n, (b+1)/n]; conf == 0 joins bin 0
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    sum_conf = np.bincount(bins, weights=conf, minlength=n_bins)
    sum_acc = np.bincount(bins, weights=correct, minlength=n_bins)
    return float(np.abs(sum_acc - sum_conf).sum() / t.size)


def negative_log_likelihood(probs: npt.ArrayLike, y_true: Sequence[int] | npt.ArrayLike) -> float:
    """Mean ``-log p(y_true)`` (probabilities floored at 1e-12)."""
    P = np.asarray(probs, dtype=np.float64)
    t = _ints(y_true)
    return float(-np.mean(np.log(np.clip(P[np.arange(t.size), t], 1e-12, None))))


def log_softmax(logits: npt.ArrayLike) -> npt.NDArray[np.float64]:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def paired_bootstrap(
    y_true: Sequence[int] | npt.ArrayLike,
    pred_a: Sequence[int] | npt.ArrayLike,
    pred_b: Sequence[int] | npt.ArrayLike,
    n_classes: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float, float]:
    """Macro-F1(a) - macro-F1(b) on the full set, and its percentile bootstrap ``1 - alpha``
    interval from ``n_boot`` resamples of the examples (the same resample for both systems)."""
    t, a, b = _ints(y_true), _ints(pred_a), _ints(pred_b)
    if not t.shape == a.shape == b.shape:
        raise ValueError("y_true, pred_a and pred_b differ in length")
    k = n_classes if n_classes is not None else int(max(t.max(), a.max(), b.max()) + 1)
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, t.size, t.size)
        diffs[i] = macro_f1(t[idx], a[idx], k) - macro_f1(t[idx], b[idx], k)
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return macro_f1(t, a, k) - macro_f1(t, b, k), float(lo), float(hi)
