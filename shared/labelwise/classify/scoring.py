"""Scores: cosine similarity and a temperature softmax.

Zero-shot scores follow the embedding-similarity recipe of Jina's Classifier API: the cosine
similarity between an input and each label embedding, turned into a distribution with a softmax
``p_j = exp(s_j / T) / sum_k exp(s_k / T)`` (Bridle, 1990, "Probabilistic interpretation of
feedforward classification network outputs"). The temperature ``T`` is chosen per model by
calibration on labelled data (``make eval``; Guo et al., 2017, "On Calibration of Modern Neural
Networks"), so that ``score`` means something.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from labelwise import numerics

FloatArray = npt.NDArray[np.float32]


def cosine_similarity(inputs: FloatArray, labels: FloatArray) -> FloatArray:
    """Cosine similarity matrix ``(n_inputs, n_labels)``.

    Rows need not be normalised; zero rows score 0. Inputs are not modified.

    >>> cosine_similarity(np.array([[1.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 3.0]])).tolist()
    [[1.0, 0.0]]
    """
    a = np.asarray(inputs, dtype=np.float32)
    b = np.asarray(labels, dtype=np.float32)
    an = np.linalg.norm(a, axis=1, keepdims=True)
    bn = np.linalg.norm(b, axis=1, keepdims=True)
    a = np.divide(a, an, out=np.zeros_like(a), where=an > 0)
    b = np.divide(b, bn, out=np.zeros_like(b), where=bn > 0)
    similarities: FloatArray = (a @ b.T).astype(np.float32)
    return similarities


def softmax(scores: FloatArray, temperature: float = 1.0) -> FloatArray:
    """Row-wise softmax of ``scores / temperature`` (:func:`labelwise.numerics.softmax`), as float32.

    Each row sums to 1. ``temperature`` must be positive.

    >>> softmax(np.array([[0.0, 0.0]])).tolist()
    [[0.5, 0.5]]
    """
    return numerics.softmax(scores, temperature).astype(np.float32)
