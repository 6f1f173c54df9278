"""Load a stored classifier's learner by the ``kind`` in its serialised header.

``"multilabel"`` is a :class:`~labelwise.learning.multilabel.MultiLabelLearner`; anything else (the
single-label mixture and its format-1 predecessor, a bare PA learner) goes to
:func:`labelwise.learning.mixture.load_learner`.
"""

from __future__ import annotations

import json

from labelwise.learning import multilabel
from labelwise.learning.mixture import MixtureLearner, load_learner
from labelwise.learning.multilabel import MultiLabelLearner
from labelwise.numerics import open_npz

#: What a stored classifier deserialises to.
Learner = MixtureLearner | MultiLabelLearner


def peek_kind(data: bytes) -> str | None:
    """The ``kind`` field of a stored learner's JSON header (None when absent or unreadable).

    >>> peek_kind(MultiLabelLearner(2).to_bytes())
    'multilabel'
    >>> peek_kind(b"not an npz") is None
    True
    """
    try:
        with open_npz(data) as npz:
            kind = json.loads(npz["header"].tobytes().decode()).get("kind")
    except (ValueError, KeyError, OSError, TypeError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def load_any(data: bytes, *, zero_shot_temperature: float = 0.05) -> Learner:
    """The learner stored in ``data``, whichever kind it is."""
    if peek_kind(data) == multilabel.KIND:
        return MultiLabelLearner.from_bytes(data)
    return load_learner(data, zero_shot_temperature=zero_shot_temperature)
