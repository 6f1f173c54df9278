"""Multi-label scoring: independent per-label probabilities and the labels above a threshold.

Zero-shot multi-label scores each label on its own: ``p_k(x) = sigmoid((cos(x, e_k) - b) / T)``,
with ``e_k`` the label's distinctive-part embedding (as zero-shot single-label uses) and ``(b, T)``
a Platt-style calibration per model (J. Platt, 1999: a logistic fit of a score to binary outcomes).
They are fitted on the development group (docs/evaluation.md) by
``.venv/bin/python scripts/calibrate_multilabel.py``: every (text, label) pair of the development
sets is a binary example, positive when the label is the text's gold class. The multi-label
few-shot learner (:mod:`labelwise.learning.multilabel`) starts each label's row from the same
sigmoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from labelwise.classify.scoring import cosine_similarity
from labelwise.learning.multilabel import MultiLabelLearner, sigmoid

FloatArray = npt.NDArray[np.float32]

#: ``/v1/classify``'s default threshold: ``prediction`` lists the labels scored at least this.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class SigmoidCalibration:
    """``p = sigmoid((cos - bias) / temperature)``."""

    bias: float
    temperature: float


#: Per model, fitted by ``scripts/calibrate_multilabel.py`` on the development group (3,000 texts
#: per set at most, 5 sets; docs/fewshot.md, "Multi-label classifiers").
CALIBRATIONS: dict[str, SigmoidCalibration] = {
    "multilingual-e5-small": SigmoidCalibration(bias=0.8147, temperature=0.0197),
    "all-minilm-l6-v2": SigmoidCalibration(bias=0.1809, temperature=0.2634),
}
#: Models not calibrated (test models, user-built ones): the default model's calibration.
FALLBACK = CALIBRATIONS["multilingual-e5-small"]


def calibration_for(model: str) -> SigmoidCalibration:
    """The zero-shot sigmoid of ``model`` (:data:`FALLBACK` for a model not calibrated)."""
    return CALIBRATIONS.get(model, FALLBACK)


def zero_shot_probabilities(
    input_vectors: FloatArray, label_vectors: FloatArray, calibration: SigmoidCalibration
) -> FloatArray:
    """Independent probabilities ``(n_inputs, n_labels)``: a calibrated sigmoid of each cosine.

    >>> p = zero_shot_probabilities(np.eye(2), np.eye(2), SigmoidCalibration(0.5, 0.1))
    >>> p.astype(np.float64).round(3).tolist()
    [[0.993, 0.007], [0.007, 0.993]]
    """
    cos = cosine_similarity(input_vectors, label_vectors).astype(np.float64)
    return sigmoid((cos - calibration.bias) / calibration.temperature).astype(np.float32)


def new_learner(dim: int, model: str) -> MultiLabelLearner:
    """An empty multi-label learner whose rows start at ``model``'s zero-shot sigmoid."""
    calibration = calibration_for(model)
    return MultiLabelLearner(dim, prior_bias=calibration.bias, prior_temperature=calibration.temperature)
