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
    #: Multi-label only: per group, every label scored at least the threshold, best first (all of
    #: them, whatever ``top_n`` cut from ``ranked``).
    chosen: dict[str, list[str]] | None = None

    @property
    def grouped(self) -> bool:
        """False when the labels were a plain list (one unnamed group)."""
        return set(self.ranked) != {UNGROUPED}


def _ranked(labels: list[str], probabilities: np.ndarray) -> list[LabelScore]:
    order = np.argsort(-probabilities, kind="stable")
    return [LabelScore(label=labels[j], score=float(probabilities[j])) for j in order]


def _chosen(ranked: list[LabelScore], threshold: float) -> list[str]:
    return [s.label for s in ranked if s.score >= threshold]


def rank(
    groups: dict[str, GroupScores],
    truncated: list[bool],
    top_n: int | None = None,
    threshold: float | None = None,
) -> list[RankedInput]:
    """One row per input: the ``top_n`` best labels of each group (all when ``None``), and with a
    ``threshold`` (multi-label) the labels of each group scored at least that.

    >>> g = {"": GroupScores(["a", "b", "c"], np.array([[0.2, 0.9, 0.6]]))}
    >>> row = rank(g, [False], top_n=1, threshold=0.5)[0]
    >>> [s.label for s in row.ranked[""]], row.chosen
    (['b'], {'': ['b', 'c']})
    """
    rows = []
    for i, was_truncated in enumerate(truncated):
        full = {name: _ranked(g.labels, g.probabilities[i]) for name, g in groups.items()}
        rows.append(
            RankedInput(
                index=i,
                ranked={name: r[:top_n] for name, r in full.items()},
                truncated=was_truncated,
                chosen=None if threshold is None else {n: _chosen(r, threshold) for n, r in full.items()},
            )
        )
    return rows
