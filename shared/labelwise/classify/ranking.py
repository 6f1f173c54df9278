"""Ranked labels per input: the plain result rows of a classification (no HTTP models).

The API maps :class:`RankedInput` to its ``Classification`` response model; uploads write the same
rows into their result files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from labelwise.classify.zeroshot import UNGROUPED, GroupScores


@dataclass(frozen=True)
class LabelScore:
    label: str
    score: float


@dataclass(frozen=True)
class RankedInput:
    """One input's labels, best first, per group (the single key :data:`UNGROUPED` for a plain list)."""

    index: int
    ranked: dict[str, list[LabelScore]]
    truncated: bool

    @property
    def grouped(self) -> bool:
        """False when the labels were a plain list (one unnamed group)."""
        return set(self.ranked) != {UNGROUPED}


def _ranked(labels: list[str], probabilities: np.ndarray) -> list[LabelScore]:
    order = np.argsort(-probabilities, kind="stable")
    return [LabelScore(label=labels[j], score=float(probabilities[j])) for j in order]


def rank(
    groups: dict[str, GroupScores], truncated: list[bool], top_n: int | None = None
) -> list[RankedInput]:
    """One row per input: the ``top_n`` best labels of each group (all when ``None``)."""
    return [
        RankedInput(
            index=i,
            ranked={name: _ranked(g.labels, g.probabilities[i])[:top_n] for name, g in groups.items()},
            truncated=was_truncated,
        )
        for i, was_truncated in enumerate(truncated)
    ]
