"""Temperature scaling (Guo et al., 2017) for zero-shot scores.

Zero-shot scores are ``softmax(cos(input, label_j) / T)`` (:func:`labelwise.classify.scoring.softmax`).
``T`` does not change the predicted label, only how confident the score is. We choose one ``T`` per
model by minimising the negative log-likelihood (or the ECE) on a held-out calibration split,
with a grid search over log-spaced temperatures followed by a finer grid around the best point.

Several datasets can be pooled; each contributes its *mean* loss with equal weight, so a large
binary set does not drown an 8-class one. Similarities are the raw cosines, shape
``(n, n_labels)``, one array per dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from labelwise.evaluation.metrics import ECE_BINS, expected_calibration_error, log_softmax

Objective = Literal["nll", "ece"]
Split = tuple[npt.ArrayLike, Sequence[int] | npt.ArrayLike]  # (similarities, gold indices)

T_MIN, T_MAX = 1e-3, 1.0


def temperature_grid(lo: float = T_MIN, hi: float = T_MAX, n: int = 91) -> npt.NDArray[np.float64]:
    """``n`` log-spaced temperatures from ``lo`` to ``hi`` (both included)."""
    if not 0 < lo < hi:
        raise ValueError("need 0 < lo < hi")
    return np.geomspace(lo, hi, n)


def probabilities(similarities: npt.ArrayLike, temperature: float) -> npt.NDArray[np.float64]:
    """``softmax(similarities / temperature)`` row-wise, float64."""
    if not temperature > 0:
        raise ValueError("temperature must be positive")
    return np.exp(log_softmax(np.asarray(similarities, dtype=np.float64) / temperature))


def nll_at(similarities: npt.ArrayLike, y: Sequence[int] | npt.ArrayLike, temperature: float) -> float:
    S = np.asarray(similarities, dtype=np.float64)
    t = np.asarray(y, dtype=np.int64).reshape(-1)
    logp = log_softmax(S / temperature)
    return float(-logp[np.arange(t.size), t].mean())


def ece_at(
    similarities: npt.ArrayLike, y: Sequence[int] | npt.ArrayLike, temperature: float, n_bins: int = ECE_BINS
) -> float:
    return expected_calibration_error(probabilities(similarities, temperature), y, n_bins)


def pooled_loss(splits: Sequence[Split], temperature: float, objective: Objective = "nll") -> float:
    """Mean over datasets of the per-dataset mean loss at ``temperature``."""
    if not splits:
        raise ValueError("no data")
    loss = nll_at if objective == "nll" else ece_at
    return float(np.mean([loss(S, y, temperature) for S, y in splits]))


@dataclass(frozen=True)
class TemperatureFit:
    temperature: float
    objective: Objective
    loss: float
    grid: tuple[float, ...]
    losses: tuple[float, ...]


def fit_temperature(
    splits: Sequence[Split],
    objective: Objective = "nll",
    grid: npt.ArrayLike | None = None,
    refine: int = 41,
) -> TemperatureFit:
    """The temperature minimising :func:`pooled_loss` over ``grid`` (default: 91 log-spaced points,
    1e-3 … 1), then over ``refine`` log-spaced points between the best point's neighbours."""
    g = temperature_grid() if grid is None else np.asarray(grid, dtype=np.float64)
    losses = np.array([pooled_loss(splits, float(t), objective) for t in g])
    best = int(np.argmin(losses))
    ts, ls = list(map(float, g)), list(map(float, losses))
    if refine > 0 and len(g) > 1:
        lo = g[max(best - 1, 0)]
        hi = g[min(best + 1, len(g) - 1)]
        fine = np.geomspace(lo, hi, refine)
        fine_losses = [pooled_loss(splits, float(t), objective) for t in fine]
        ts += list(map(float, fine))
        ls += list(map(float, fine_losses))
    order = np.argsort(ts)
    ts_sorted = tuple(ts[i] for i in order)
    ls_sorted = tuple(ls[i] for i in order)
    i = int(np.argmin(ls_sorted))
    return TemperatureFit(ts_sorted[i], objective, ls_sorted[i], ts_sorted, ls_sorted)


@dataclass(frozen=True)
class CalibrationReport:
    """ECE and NLL of one dataset's test split at the old and the fitted temperature."""

    dataset: str
    n: int
    t_before: float
    t_after: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float


def report(
    dataset: str,
    similarities: npt.ArrayLike,
    y: Sequence[int] | npt.ArrayLike,
    t_before: float,
    t_after: float,
    n_bins: int = ECE_BINS,
) -> CalibrationReport:
    S = np.asarray(similarities, dtype=np.float64)
    return CalibrationReport(
        dataset=dataset,
        n=int(S.shape[0]),
        t_before=t_before,
        t_after=t_after,
        ece_before=ece_at(S, y, t_before, n_bins),
        ece_after=ece_at(S, y, t_after, n_bins),
        nll_before=nll_at(S, y, t_before),
        nll_after=nll_at(S, y, t_after),
    )
