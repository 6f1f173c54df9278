"""The multi-label learner: one-vs-rest binary passive-aggressive rows with Platt-calibrated sigmoids.

Each label ``k`` is its own binary problem: "does ``x`` carry ``k``?". Its score is the margin
``f_k(x) = w_k . x + b_k`` of a binary PA-I learner (K. Crammer, O. Dekel, J. Keshet,
S. Shalev-Shwartz, Y. Singer, "Online Passive-Aggressive Algorithms", JMLR 7 (2006) 551-585; the
binary section, with the bias as a constant feature): on an example with target ``y in {-1, +1}``,

* loss   ``l = max(0, 1 - y f_k(x))``
* PA-I   ``tau = min(C, l / (||x||^2 + 1))``
* update ``w_k += tau y x``, ``b_k += tau y``

and its probability is a sigmoid of that margin, ``p_k(x) = sigmoid(A_k f_k(x) + B_k)`` (J. Platt,
"Probabilistic Outputs for Support Vector Machines and Comparisons to Regularized Likelihood
Methods", 1999), so the probabilities of one input do not sum to 1.

Cold start: a new label's row is the zero-shot multi-label score, ``f_k(x) = (x . e_k - bias) /
temperature`` with ``e_k`` the label text's embedding and ``(bias, temperature)`` the model's
calibrated zero-shot sigmoid (``labelwise.classify.multilabel``), and ``A_k = 1, B_k = 0``: before
any example a classifier answers like zero-shot multi-label; examples then move the rows.

Calibration is held out and aggregated, as Platt recommends (cross-validated scores, not the
training scores the rows were fitted to). Before learning a batch, each example is scored by rows
that learned the *other* :data:`CV_FOLDS` - 1 folds of the batch (from the pre-batch state, with
the same passes), and that margin is counted into one of :data:`BINS` fixed bins per label,
separately for positives and negatives. ``A_k, B_k`` are the maximum a posteriori Platt fit on
those counts (Platt's smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``, a Gaussian
prior of precision :data:`PLATT_PRIOR` around ``(1, 0)``), refitted after each batch by Newton's
method, with ``A_k >= MIN_SLOPE`` so that a larger margin never means a smaller probability.
What is stored holds no example text and nothing beyond aggregates: the rows, the biases, the
bin counts and the two Platt parameters per label.

Batches are learned in a canonical order (SHA-256 of each row's bytes and its sorted labels), then
shuffled per pass with the caller's seed: the same batch in another order trains the same learner.

>>> rng = np.random.default_rng(0)
>>> e = np.eye(4)[:2]
>>> learner = MultiLabelLearner(4, prior_bias=0.5, prior_temperature=0.1)
>>> learner.add_labels(["a", "b"], e)
>>> X = np.array([[1.0, 1.0, 0, 0], [1.0, 0, 0, 0], [0, 1.0, 0, 0]]) / np.array([[2**0.5], [1], [1]])
>>> learner.partial_fit(X, [["a", "b"], ["a"], ["b"]], seed=1)
>>> (learner.predict_proba(X) > 0.5).astype(int).tolist()
[[1, 1], [1, 0], [0, 1]]
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from labelwise.numerics import open_npz

F64 = npt.NDArray[np.float64]
FloatArray = npt.NDArray[np.float32]

#: ``kind`` of the serialised header; :data:`FORMAT_VERSION` its version.
KIND = "multilabel"
FORMAT_VERSION = 1
#: PA-I aggressiveness (steps are capped at ``C``).
DEFAULT_C = 1.0
#: Passes over a batch when the caller names none (the API's default ``num_iters``).
DEFAULT_NUM_ITERS = 10
#: Calibration bins: margins clipped to ``[-MARGIN_RANGE, MARGIN_RANGE]``, ``BINS`` equal bins.
BINS = 48
MARGIN_RANGE = 6.0
#: Precision of the Gaussian prior of ``(A, B)`` around the zero-shot calibration ``(1, 0)``.
PLATT_PRIOR = 4.0
#: Newton steps of the Platt fit.
PLATT_STEPS = 25
#: Smallest Platt slope ``A`` kept (probabilities increase with the margin).
MIN_SLOPE = 0.05
#: Folds of the held-out scoring within one batch (leave-one-out when the batch is smaller).
CV_FOLDS = 5


def sigmoid(z: npt.ArrayLike) -> F64:
    """Logistic function, numerically stable for large ``|z|``.

    >>> sigmoid([0.0, 1000.0, -1000.0]).tolist()
    [0.5, 1.0, 0.0]
    """
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    ez = np.exp(z[~pos])
    out[~pos] = ez / (1.0 + ez)
    return out


def bin_centres() -> F64:
    """Centres of the calibration bins (margins)."""
    edges = np.linspace(-MARGIN_RANGE, MARGIN_RANGE, BINS + 1)
    return (edges[:-1] + edges[1:]) / 2


def bin_of(margins: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The calibration bin of each margin (clipped into the range)."""
    m = np.clip(np.asarray(margins, dtype=np.float64), -MARGIN_RANGE, MARGIN_RANGE)
    index = np.floor((m + MARGIN_RANGE) / (2 * MARGIN_RANGE) * BINS).astype(np.int64)
    return np.minimum(index, BINS - 1)


def platt_fit(positives: F64, negatives: F64, prior: float = PLATT_PRIOR) -> tuple[float, float]:
    """MAP Platt parameters ``(A, B)`` of one label from its bin counts (``BINS`` each).

    Minimises ``-sum_b [n+_b (t+ log p_b + (1 - t+) log(1 - p_b)) + n-_b (t- log p_b + (1 - t-)
    log(1 - p_b))] + prior / 2 ((A - 1)^2 + B^2)`` with ``p_b = sigmoid(A c_b + B)`` at bin centres
    ``c_b`` and Platt's targets ``t+ = (N+ + 1) / (N+ + 2)``, ``t- = 1 / (N- + 2)``.

    >>> platt_fit(np.zeros(BINS), np.zeros(BINS))
    (1.0, 0.0)
    """
    centres = bin_centres()
    n_pos, n_neg = float(positives.sum()), float(negatives.sum())
    t_pos, t_neg = (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2)
    weight = positives + negatives
    target = np.divide(
        positives * t_pos + negatives * t_neg, weight, out=np.zeros_like(weight), where=weight > 0
    )
    params = np.array([1.0, 0.0])
    features = np.stack([centres, np.ones_like(centres)], axis=1)
    anchor = np.array([1.0, 0.0])
    for _ in range(PLATT_STEPS):
        p = sigmoid(features @ params)
        grad = features.T @ (weight * (p - target)) + prior * (params - anchor)
        hess = (features * (weight * p * (1 - p))[:, None]).T @ features + prior * np.eye(2)
        step = np.linalg.solve(hess, grad)
        params = params - step
        if float(np.abs(step).max()) < 1e-10:
            break
    return max(float(params[0]), MIN_SLOPE), float(params[1])


def pa_passes(
    weights: F64, bias: F64, x: F64, targets: F64, passes: int, rng: np.random.Generator, c: float
) -> None:
    """Binary PA-I on every label at once, in place: ``passes`` passes over rows ``x`` (targets
    ``+-1`` per label), the first in the given order, the others shuffled by ``rng``."""
    for p in range(passes):
        for i in rng.permutation(len(x)) if p else range(len(x)):
            margin = weights @ x[i] + bias
            loss = np.maximum(0.0, 1.0 - targets[i] * margin)
            tau = np.minimum(c, loss / (float(x[i] @ x[i]) + 1.0)) * targets[i]
            weights += tau[:, None] * x[i][None, :]
            bias += tau


def canonical_rows(X: FloatArray, y: Sequence[Sequence[str]]) -> list[int]:
    """Row order by SHA-256 of each row's float32 bytes and its sorted labels."""
    keys = [
        hashlib.sha256(row.tobytes() + "\x1f".join(sorted(labels)).encode("utf-8")).digest()
        for row, labels in zip(X, y, strict=True)
    ]
    return sorted(range(len(keys)), key=lambda i: (keys[i], i))


class MultiLabelLearner:
    """One-vs-rest binary PA-I rows with Platt-calibrated sigmoids (see the module docstring).

    Parameters
    ----------
    dim
        Embedding dimension.
    prior_bias, prior_temperature
        The model's zero-shot multi-label calibration: a new label's margin starts as
        ``(x . e_k - prior_bias) / prior_temperature``.
    c
        PA-I aggressiveness.
    num_iters
        Passes over a batch when :meth:`partial_fit` is given none.
    """

    def __init__(
        self,
        dim: int,
        *,
        prior_bias: float = 0.8,
        prior_temperature: float = 0.05,
        c: float = DEFAULT_C,
        num_iters: int = DEFAULT_NUM_ITERS,
    ) -> None:
        if dim <= 0:
            raise ValueError("dim must be positive")
        if not prior_temperature > 0 or not c > 0 or num_iters < 1:
            raise ValueError("prior_temperature and c must be positive, num_iters >= 1")
        self.dim = dim
        self.prior_bias = float(prior_bias)
        self.prior_temperature = float(prior_temperature)
        self.c = float(c)
        self.num_iters = int(num_iters)
        self._labels: list[str] = []
        self.weights: F64 = np.zeros((0, dim))
        self.bias: F64 = np.zeros(0)
        self.positives: F64 = np.zeros((0, BINS))
        self.negatives: F64 = np.zeros((0, BINS))
        self.platt: F64 = np.zeros((0, 2))
        self.num_samples = 0

    @property
    def labels(self) -> list[str]:
        """Labels in row order (the order they were added)."""
        return list(self._labels)

    def add_labels(self, labels: Sequence[str], label_vectors: npt.ArrayLike) -> None:
        """Append the labels not yet known; each row starts at the zero-shot margin of its vector."""
        vectors = np.asarray(label_vectors, dtype=np.float64)
        if vectors.shape != (len(labels), self.dim):
            raise ValueError(f"label_vectors must have shape ({len(labels)}, {self.dim})")
        fresh: dict[str, F64] = {}
        for label, vector in zip(labels, vectors, strict=True):
            if label not in self._labels and label not in fresh:
                fresh[label] = vector
        if not fresh:
            return
        rows = np.asarray(list(fresh.values()))
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        rows = np.divide(rows, norms, out=np.zeros_like(rows), where=norms > 0)
        k = len(fresh)
        self._labels.extend(fresh)
        self.weights = np.vstack([self.weights, rows / self.prior_temperature])
        self.bias = np.concatenate([self.bias, np.full(k, -self.prior_bias / self.prior_temperature)])
        self.positives = np.vstack([self.positives, np.zeros((k, BINS))])
        self.negatives = np.vstack([self.negatives, np.zeros((k, BINS))])
        self.platt = np.vstack([self.platt, np.tile([1.0, 0.0], (k, 1))])

    def set_label_vectors(self, label_vectors: npt.ArrayLike) -> None:
        """Accepted for the single-label learner's interface: learned rows are kept as learned."""
        if np.asarray(label_vectors).shape != (len(self._labels), self.dim):
            raise ValueError(f"label_vectors must have shape ({len(self._labels)}, {self.dim})")

    def _targets(self, y: Sequence[Sequence[str]]) -> F64:
        index = {label: i for i, label in enumerate(self._labels)}
        unknown = sorted({label for labels in y for label in labels if label not in index})
        if unknown:
            raise ValueError(f"unknown labels {unknown}; add them first")
        targets = -np.ones((len(y), len(self._labels)))
        for i, labels in enumerate(y):
            targets[i, [index[label] for label in labels]] = 1.0
        return targets

    def partial_fit(
        self, X: npt.ArrayLike, y: Sequence[Sequence[str]], *, seed: int, num_iters: int | None = None
    ) -> None:
        """Learn one batch: ``y[i]`` is the (possibly empty) set of labels of row ``i``.

        ``X`` and ``y`` are not modified. Rows are taken in canonical order; each example's
        cross-validated margin is counted into the calibration bins (:meth:`heldout_margins`), the
        rows learn the batch (each pass after the first shuffled with ``seed``) and the Platt
        parameters are refitted.
        """
        passes = self.num_iters if num_iters is None else int(num_iters)
        if passes < 1:
            raise ValueError("num_iters must be >= 1")
        x32 = np.asarray(X, dtype=np.float32)
        if x32.ndim != 2 or x32.shape[1] != self.dim:
            raise ValueError(f"X must have shape (n, {self.dim})")
        if len(y) != x32.shape[0]:
            raise ValueError("X and y must have the same length")
        targets = self._targets(y)
        if x32.shape[0] == 0 or not self._labels:
            return
        order = canonical_rows(x32, y)
        x = x32[order].astype(np.float64)
        t = targets[order]
        bins = bin_of(self.heldout_margins(x, t, seed, passes))
        for k in range(len(self._labels)):
            np.add.at(self.positives[k], bins[t[:, k] > 0, k], 1.0)
            np.add.at(self.negatives[k], bins[t[:, k] < 0, k], 1.0)
        pa_passes(self.weights, self.bias, x, t, passes, np.random.default_rng(seed), self.c)
        self.platt = np.array(
            [platt_fit(pos, neg) for pos, neg in zip(self.positives, self.negatives, strict=True)]
        ).reshape(-1, 2)
        self.num_samples += len(x)

    def heldout_margins(self, x: F64, targets: F64, seed: int, passes: int) -> F64:
        """Margins ``(n, n_labels)`` of each row by the current rows after learning the other folds
        of the batch (folds by position: row ``i`` is in fold ``i % CV_FOLDS``); the learner is
        not changed."""
        folds = min(CV_FOLDS, len(x))
        fold_of = np.arange(len(x)) % folds
        out = np.zeros((len(x), len(self._labels)))
        for f in range(folds):
            held, rest = fold_of == f, fold_of != f
            weights, bias = self.weights.copy(), self.bias.copy()
            rng = np.random.default_rng([seed, f])
            pa_passes(weights, bias, x[rest], targets[rest], passes, rng, self.c)
            out[held] = x[held] @ weights.T + bias
        return out

    def decision_function(self, X: npt.ArrayLike) -> F64:
        """Margins ``(n, n_labels)``: ``w_k . x + b_k``."""
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"X must have shape (n, {self.dim})")
        return x @ self.weights.T + self.bias

    def predict_proba(self, X: npt.ArrayLike) -> FloatArray:
        """Independent probabilities ``(n, n_labels)`` in :attr:`labels` order (rows need not sum to 1)."""
        margins = self.decision_function(X)
        return sigmoid(margins * self.platt[:, 0] + self.platt[:, 1]).astype(np.float32)

    # -- serialisation ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Compressed ``.npz`` with a JSON header (``format``, ``kind`` ``"multilabel"``); no pickles."""
        header = {
            "format": FORMAT_VERSION,
            "kind": KIND,
            "dim": self.dim,
            "labels": self._labels,
            "prior_bias": self.prior_bias,
            "prior_temperature": self.prior_temperature,
            "c": self.c,
            "num_iters": self.num_iters,
            "num_samples": self.num_samples,
        }
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            weights=self.weights,
            bias=self.bias,
            positives=self.positives,
            negatives=self.negatives,
            platt=self.platt,
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> MultiLabelLearner:
        """Inverse of :meth:`to_bytes`; ``ValueError`` on another kind, format or mismatched arrays."""
        with open_npz(data) as npz:
            header = json.loads(npz["header"].tobytes().decode())
            if header.get("kind") != KIND or header.get("format") != FORMAT_VERSION:
                kind, fmt = header.get("kind"), header.get("format")
                raise ValueError(f"not a multi-label learner (kind {kind!r}, format {fmt!r})")
            arrays = {name: np.asarray(a, dtype=np.float64) for name, a in npz.items() if name != "header"}
        learner = cls(
            int(header["dim"]),
            prior_bias=float(header["prior_bias"]),
            prior_temperature=float(header["prior_temperature"]),
            c=float(header["c"]),
            num_iters=int(header["num_iters"]),
        )
        k, d = len(header["labels"]), learner.dim
        want = {
            "weights": (k, d),
            "bias": (k,),
            "positives": (k, BINS),
            "negatives": (k, BINS),
            "platt": (k, 2),
        }
        bad = sorted(name for name, shape in want.items() if arrays[name].shape != shape)
        if bad:
            raise ValueError(f"stored arrays {bad} do not match the labels and dimension in the header")
        learner._labels = [str(label) for label in header["labels"]]
        learner.weights, learner.bias = arrays["weights"], arrays["bias"]
        learner.positives, learner.negatives = arrays["positives"], arrays["negatives"]
        learner.platt = arrays["platt"]
        learner.num_samples = int(header["num_samples"])
        return learner
