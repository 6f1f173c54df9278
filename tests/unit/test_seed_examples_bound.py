"""scripts/seed_examples_bound.py: the best agreement any threshold on a margin can give."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "seed_examples_bound.py"


def _script():
    spec = importlib.util.spec_from_file_location("seed_examples_bound", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _naive(margin: np.ndarray, gold: np.ndarray) -> int:
    """Every threshold below, between and above the margins, written out."""
    points = np.sort(margin)
    cuts = [points[0] - 1.0, *((points[:-1] + points[1:]) / 2), points[-1] + 1.0, *points]
    return max(int(((margin > t) == gold).sum()) for t in cuts)


@pytest.mark.parametrize("seed", range(20))
def test_best_threshold_agreement_equals_trying_every_threshold(seed: int) -> None:
    # Given random margins (with ties) and random gold answers
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    margin = np.round(rng.normal(size=n), 1)
    gold = rng.random(n) < 0.5
    # When the script's bound is computed
    got = _script().best_threshold_agreement(margin, gold)
    # Then it is the best over every threshold, and at least what the better constant answer gets
    assert got == _naive(margin, gold)
    assert got >= max(int(gold.sum()), int((~gold).sum()))


def test_a_separable_margin_gets_every_answer_and_the_inputs_are_not_modified() -> None:
    # Given margins that a threshold separates, in shuffled order
    margin = np.array([0.3, -0.2, 0.1, -0.4])
    gold = np.array([True, False, True, False])
    before = margin.copy()
    # When the bound is computed
    got = _script().best_threshold_agreement(margin, gold)
    # Then all four are right and the margins are as they were
    assert got == 4
    np.testing.assert_array_equal(margin, before)
