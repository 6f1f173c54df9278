"""Numeric helpers shared by every package (a base module: imports numpy only, no labelwise module).

:func:`softmax` is the one row-wise softmax of the project: zero-shot scores (``classify``), the
online learners' experts and probabilities (``learning``) and the image model's class
probabilities (``embedding``) all go through it.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def softmax(logits: npt.ArrayLike, temperature: float = 1.0) -> F64:
    """Row-wise ``exp(z_j) / sum_k exp(z_k)`` with ``z = logits / temperature``, in float64.

    ``logits`` is 2-d ``(rows, classes)``; each row of the result sums to 1 (a row of no classes
    gives an empty row). The row maximum is subtracted before ``exp`` (the result is unchanged,
    softmax being shift invariant, and ``exp`` cannot overflow). ``temperature`` must be positive;
    a smaller one gives sharper distributions. ``logits`` is never modified.

    >>> softmax(np.array([[0.0, 0.0], [0.0, np.log(3.0)]])).round(6).tolist()
    [[0.5, 0.5], [0.25, 0.75]]
    """
    if not temperature > 0:
        raise ValueError("temperature must be positive")
    z = np.asarray(logits, dtype=np.float64) / temperature
    if z.ndim != 2:
        raise ValueError("logits must be a 2-d array (rows, classes)")
    if z.shape[1] == 0:
        return np.zeros(z.shape, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


#: Serialises :func:`open_npz`: numpy parses every ``.npy`` member's header with
#: ``ast.literal_eval``, and CPython 3.11 can fail concurrent AST construction in several threads
#: with ``SystemError: AST constructor recursion depth mismatch`` (seen in
#: ``tests/integration/test_store_concurrency.py``, 8 writers loading classifiers at once).
_NPZ_LOCK = threading.Lock()


@contextlib.contextmanager
def open_npz(data: bytes) -> Iterator[dict[str, npt.NDArray[np.generic]]]:
    """Every array of an in-memory ``.npz`` (no pickles), read under one process-wide lock (reading
    takes microseconds; see :data:`_NPZ_LOCK`). Raises what ``np.load`` raises on bad data."""
    with _NPZ_LOCK, np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {name: np.array(npz[name]) for name in npz.files}
    yield arrays
