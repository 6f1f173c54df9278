"""Multiclass passive-aggressive learner with a zero-shot cold start.

Reference: K. Crammer, O. Dekel, J. Keshet, S. Shalev-Shwartz, Y. Singer, "Online Passive-Aggressive
Algorithms", JMLR 7 (2006) 551-585. We implement the *multi-prototype* multiclass variant of the
paper's multiclass section ("Multiclass Problems"): one weight row ``w_r`` per label, score
``w_r . x``, and on each example the single pair (true label ``y``, highest-scoring wrong label
``s``) is updated. With the block feature map ``Phi(x, r)`` (``x`` in block ``r``) the paper's
step sizes apply with ``||Phi(x, y) - Phi(x, s)||^2 = 2 ||x||^2``:

* loss   ``l = max(0, 1 - (w_y . x - w_s . x))``, ``s = argmax_{r != y} w_r . x`` (lowest index on ties)
* PA     ``tau = l / (2 ||x||^2)``
* PA-I   ``tau = min(C, l / (2 ||x||^2))``                      (default, ``C = 1.0``)
* PA-II  ``tau = l / (2 ||x||^2 + 1 / (2 C))``
* update ``w_y += tau x``, ``w_s -= tau x``

``C = 1.0`` is scikit-learn's ``PassiveAggressiveClassifier`` default. For unit-norm embeddings the
PA-I cap only binds when ``l > 2C``, i.e. on examples that the model currently gets wrong by more
than a full margin (mostly label noise), which bounds their influence.

Cold start: when a label first appears its row is ``prior_strength * e(label)`` (the label text's
embedding), so before any example the classifier ranks like zero-shot, and since PA steps aim for a
margin of 1 while cosine gaps between label embeddings are ~0.05, a few examples take over; for
meaningless labels ("team1"/"team2") the examples decide.

Averaging (optional, averaged-perceptron style; Freund & Schapire 1999, Collins 2002): the averaged
weights are the mean of ``W`` after every example step. We keep ``W``, ``U = sum_t (t - 1) delta_t``
and the step count ``T`` so the average ``W - U / T`` survives across batches and serialisation.

Everything persisted is float32 (``W``, ``U``) plus the step count; training works in float64 and
casts back at the end of each :meth:`PALearner.partial_fit`, so a deserialised learner continues
exactly like the in-memory one.

>>> rng = np.random.default_rng(0)
>>> centres = rng.normal(size=(2, 8))
>>> X = np.repeat(centres, 10, axis=0) + 0.1 * rng.normal(size=(20, 8))
>>> X /= np.linalg.norm(X, axis=1, keepdims=True)
>>> y = ["a"] * 10 + ["b"] * 10
>>> clf = PALearner(dim=8)
>>> clf.add_labels(["a", "b"], np.zeros((2, 8), dtype=np.float32))
>>> clf.partial_fit(X, y, seed=seed_for("demo", 1))
>>> accuracy = float(np.mean(np.array(clf.labels)[clf.decision_function(X).argmax(axis=1)] == y))
>>> print(f"training accuracy {accuracy:.2f}")
training accuracy 1.00
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from labelwise import numerics
from labelwise.numerics import open_npz

FloatArray = npt.NDArray[np.float32]
Variant = Literal["pa", "pa-i", "pa-ii"]

#: Default aggressiveness parameter C (scikit-learn's default).
DEFAULT_C = 1.0
#: Default passes over each training batch.
DEFAULT_NUM_ITERS = 5
#: Default scale of a label's embedding in its initial row.
DEFAULT_PRIOR_STRENGTH = 1.0
#: Serialisation format version (bumped on incompatible changes).
FORMAT_VERSION = 1


def seed_for(classifier_id: str, version: int) -> int:
    """Shuffle seed derived from a classifier id and the version being produced.

    >>> seed_for("abc", 2) == seed_for("abc", 2) != seed_for("abc", 3)
    True
    """
    digest = hashlib.sha256(f"{classifier_id}:{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def scores_to_probabilities(scores: npt.ArrayLike, temperature: float = 1.0) -> FloatArray:
    """Row-wise softmax of ``scores / temperature`` (max subtracted for stability).

    ``scores`` are the raw ``W . x`` of :meth:`PALearner.decision_function`; a smaller
    ``temperature`` gives sharper distributions. Rows sum to 1.

    >>> scores_to_probabilities(np.array([[1.0, 1.0], [0.0, 0.0]])).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    return numerics.softmax(scores, temperature).astype(np.float32)


def step_size(loss: float, sq_norm: float, variant: Variant, c: float) -> float:
    """PA / PA-I / PA-II step ``tau`` for the two-row multiclass update (``2 ||x||^2``).

    >>> step_size(1.0, 1.0, "pa", 1.0), step_size(4.0, 1.0, "pa-i", 1.0), step_size(1.0, 1.0, "pa-ii", 0.5)
    (0.5, 1.0, 0.3333333333333333)
    """
    if loss <= 0.0 or sq_norm <= 0.0:
        return 0.0
    denom = 2.0 * sq_norm
    if variant == "pa":
        return loss / denom
    if variant == "pa-i":
        return min(c, loss / denom)
    return loss / (denom + 1.0 / (2.0 * c))


def hinge_loss(scores: npt.NDArray[np.float64], y: int) -> tuple[float, int]:
    """Multiclass hinge loss of one score row and the runner-up label index (lowest on ties).

    >>> hinge_loss(np.array([0.2, 0.5, 0.1]), 1)
    (0.7, 0)
    """
    masked = np.array(scores, dtype=np.float64, copy=True)
    masked[y] = -np.inf
    s = int(np.argmax(masked))
    return max(0.0, 1.0 - float(scores[y] - scores[s])), s


class PALearner:
    """Multiclass passive-aggressive classifier over unit embeddings, one row per label.

    Parameters
    ----------
    dim:
        Embedding dimension (384 for the bundled models).
    variant:
        ``"pa"``, ``"pa-i"`` (default) or ``"pa-ii"``; see the module docstring.
    c:
        Aggressiveness ``C`` of PA-I / PA-II (default :data:`DEFAULT_C`).
    num_iters:
        Passes over each batch in :meth:`partial_fit` (default :data:`DEFAULT_NUM_ITERS`).
    average:
        Score with averaged weights (``True``) or the last weights (``False``, default).
    prior_strength:
        A new label's row starts at ``prior_strength * label_embedding``.
    c_per_rival:
        Scale ``C`` by the number of rival labels (``C * (n_labels - 1)``) at each
        :meth:`partial_fit`. Each PA step moves one (true, best wrong) pair; with ``n`` labels an
        example has ``n - 1`` rivals to clear, so a fixed cap that suits two labels under-fits
        eight within the same number of passes (measured: docs/fewshot.md). Off by default.
    """

    def __init__(
        self,
        dim: int,
        *,
        variant: Variant = "pa-i",
        c: float = DEFAULT_C,
        num_iters: int = DEFAULT_NUM_ITERS,
        average: bool = False,
        prior_strength: float = DEFAULT_PRIOR_STRENGTH,
        c_per_rival: bool = False,
    ) -> None:
        if dim <= 0:
            raise ValueError("dim must be positive")
        if variant not in ("pa", "pa-i", "pa-ii"):
            raise ValueError(f"unknown variant {variant!r}")
        if not c > 0:
            raise ValueError("c must be positive")
        if num_iters < 1:
            raise ValueError("num_iters must be >= 1")
        self.dim = dim
        self.variant: Variant = variant
        self.c = float(c)
        self.num_iters = int(num_iters)
        self.average = bool(average)
        self.prior_strength = float(prior_strength)
        self.c_per_rival = bool(c_per_rival)
        self._labels: list[str] = []
        self._index: dict[str, int] = {}
        self.weights: FloatArray = np.zeros((0, dim), dtype=np.float32)
        self.weighted_updates: FloatArray = np.zeros((0, dim), dtype=np.float32)
        self.steps = 0

    # -- labels -----------------------------------------------------------------------------------

    @property
    def labels(self) -> list[str]:
        """Labels in row order (the order they were added; never reordered)."""
        return list(self._labels)

    def add_labels(self, labels: Sequence[str], label_vectors: npt.ArrayLike) -> None:
        """Append a row per new label, initialised to ``prior_strength * label_vectors[i]``.

        Labels already present are ignored (their rows are kept). ``label_vectors`` has one row
        per entry of ``labels``.
        """
        vectors = np.asarray(label_vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape != (len(labels), self.dim):
            raise ValueError(f"label_vectors must have shape ({len(labels)}, {self.dim})")
        new_rows = []
        for label, vector in zip(labels, vectors, strict=True):
            if label in self._index:
                continue
            self._index[label] = len(self._labels)
            self._labels.append(label)
            new_rows.append(self.prior_strength * vector)
        if new_rows:
            rows = np.asarray(new_rows, dtype=np.float32)
            self.weights = np.vstack([self.weights, rows]).astype(np.float32)
            self.weighted_updates = np.vstack([self.weighted_updates, np.zeros_like(rows)]).astype(np.float32)

    # -- training ---------------------------------------------------------------------------------

    def partial_fit(
        self, X: npt.ArrayLike, y: Sequence[str], *, seed: int, num_iters: int | None = None
    ) -> None:
        """Learn from one batch: ``num_iters`` passes (default :attr:`num_iters`), each in an order
        drawn from ``seed``.

        Every label in ``y`` must have been added with :meth:`add_labels`. ``X`` is not modified.
        """
        passes = self.num_iters if num_iters is None else int(num_iters)
        if passes < 1:
            raise ValueError("num_iters must be >= 1")
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"X must have shape (n, {self.dim})")
        if len(y) != x.shape[0]:
            raise ValueError("X and y must have the same length")
        unknown = sorted({label for label in y if label not in self._index})
        if unknown:
            raise ValueError(f"unknown labels {unknown}; add them first")
        if len(self._labels) < 2 or x.shape[0] == 0:
            return
        targets = np.array([self._index[label] for label in y], dtype=np.int64)
        sq_norms = np.einsum("ij,ij->i", x, x)
        w = self.weights.astype(np.float64)
        u = self.weighted_updates.astype(np.float64)
        t = self.steps
        rng = np.random.default_rng(seed)
        c = self.effective_c()
        for _ in range(passes):
            for i in rng.permutation(x.shape[0]):
                loss, s = hinge_loss(w @ x[i], int(targets[i]))
                tau = step_size(loss, float(sq_norms[i]), self.variant, c)
                if tau > 0.0:
                    delta = tau * x[i]
                    w[targets[i]] += delta
                    w[s] -= delta
                    u[targets[i]] += t * delta
                    u[s] -= t * delta
                t += 1
        self.weights = w.astype(np.float32)
        self.weighted_updates = u.astype(np.float32)
        self.steps = t

    # -- scoring ----------------------------------------------------------------------------------

    def effective_weights(self) -> FloatArray:
        """The weights used for scoring: averaged ``W - U / T`` if ``average`` else ``W``."""
        if not self.average or self.steps == 0:
            return self.weights
        avg = self.weights.astype(np.float64) - self.weighted_updates.astype(np.float64) / self.steps
        return avg.astype(np.float32)

    def decision_function(self, X: npt.ArrayLike) -> FloatArray:
        """Raw scores ``W . x``, shape ``(n_inputs, n_labels)`` in :attr:`labels` order."""
        x = np.asarray(X, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"X must have shape (n, {self.dim})")
        return (x @ self.effective_weights().T).astype(np.float32)

    def predict_proba(self, X: npt.ArrayLike, temperature: float = 1.0) -> FloatArray:
        """:func:`scores_to_probabilities` of :meth:`decision_function`."""
        return scores_to_probabilities(self.decision_function(X), temperature)

    def effective_c(self) -> float:
        """The cap ``C`` used by the next :meth:`partial_fit` (see ``c_per_rival``)."""
        return self.c * max(1, len(self._labels) - 1) if self.c_per_rival else self.c

    # -- serialisation ----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Compressed ``.npz`` (float32 weights, no pickles); :meth:`from_bytes` restores it exactly."""
        header = {
            "format": FORMAT_VERSION,
            "dim": self.dim,
            "variant": self.variant,
            "c": self.c,
            "num_iters": self.num_iters,
            "average": self.average,
            "prior_strength": self.prior_strength,
            "c_per_rival": self.c_per_rival,
            "labels": self._labels,
        }
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
            weights=self.weights.astype(np.float32),
            weighted_updates=self.weighted_updates.astype(np.float32),
            steps=np.array([self.steps], dtype=np.int64),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> PALearner:
        """Inverse of :meth:`to_bytes`. Raises ``ValueError`` on an unknown format."""
        with open_npz(data) as npz:
            header = json.loads(npz["header"].tobytes().decode())
            if header.get("format") != FORMAT_VERSION:
                raise ValueError(f"unsupported weights format {header.get('format')!r}")
            weights = npz["weights"]
            weighted_updates = npz["weighted_updates"]
            steps = int(npz["steps"][0])
        learner = cls(
            int(header["dim"]),
            variant=header["variant"],
            c=float(header["c"]),
            num_iters=int(header["num_iters"]),
            average=bool(header["average"]),
            prior_strength=float(header["prior_strength"]),
            c_per_rival=bool(header.get("c_per_rival", False)),
        )
        labels = [str(label) for label in header["labels"]]
        if weights.shape != (len(labels), learner.dim) or weighted_updates.shape != weights.shape:
            raise ValueError("weights do not match the labels and dimension in the header")
        learner._labels = labels
        learner._index = {label: i for i, label in enumerate(labels)}
        learner.weights = weights.astype(np.float32)
        learner.weighted_updates = weighted_updates.astype(np.float32)
        learner.steps = steps
        return learner
