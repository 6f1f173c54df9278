"""``labelwise evaluate`` end to end with the real int8 model: the command in a child process on a
tiny labelled CSV; exit code, the table, results.json, the plot, and nothing left in the store."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.model, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

POSITIVE = [
    "great food, loved it", "wonderful staff and tasty dishes", "best pizza in town",
    "amazing service, will return", "delicious and fresh", "friendly and fast",
    "excellent wine list", "superb dessert", "cozy place, lovely evening",
    "fantastic brunch", "perfect steak", "charming and tasty",
]  # fmt: skip
NEGATIVE = [
    "cold food and rude waiter", "terrible, never again", "waited an hour for soup",
    "dirty tables and bad smell", "overpriced and bland", "the worst burger ever",
    "slow service, stale bread", "awful experience", "burnt pizza, no apology",
    "noisy and unpleasant", "soggy fries, warm beer", "disappointing and rude",
]  # fmt: skip


def test_evaluate_on_a_tiny_labelled_file(built_model_dir: Path, tmp_path: Path) -> None:
    # Given 12 short reviews of each of two labels, in a CSV with other column names
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "sentiment"])
        w.writerows([(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE])
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "shared"),  # this checkout's code first
        "LABELWISE_MODEL_DIR": str(built_model_dir.parent),
        "LABELWISE_DEFAULT_MODEL": built_model_dir.name,
        "LABELWISE_DATA_DIR": str(tmp_path / "data"),
    }
    # When `labelwise evaluate` runs on it (stderr is a pipe: no progress bar)
    args = ["evaluate", str(data), "--text-column", "review", "--label-column", "sentiment"]
    proc = subprocess.run(
        [sys.executable, "-m", "labelwise.cli", *args, "--out", str(out)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    # Then it succeeds and prints the split, the table and the answer
    assert proc.returncode == 0, proc.stderr
    assert "held-out test split: 7 examples (stratified); training pool: 17" in proc.stdout
    assert "few-shot sizes per label: 4, 8, 9; 3 seeds each" in proc.stdout
    for line in ("zero-shot", "few-shot           4", "per-label F1 at 9 per label", "positive", "negative"):
        assert line in proc.stdout
    assert "zero-shot (macro-F1" in proc.stdout  # the verdict, either way
    assert "evaluate [" not in proc.stderr
    # And results.json holds the model's fingerprint, the split and every run
    doc = json.loads((out / "results.json").read_text())
    assert doc["model"] == built_model_dir.name
    assert doc["model_fingerprint"].startswith(built_model_dir.name + "-")
    assert doc["labels"] == ["negative", "positive"] and doc["test_size"] == 7 and doc["train_size"] == 17
    assert doc["sizes"] == [4, 8, 9] and len(doc["few_shot"]) == 9
    assert 0.5 <= doc["zero_shot"]["macro_f1"] <= 1.0
    assert [c["k"] for c in doc["curve"]] == [4, 8, 9] and "examples_needed" in doc
    assert (out / "learning_curve.png").stat().st_size > 1000
    # And nothing was stored in the configured data dir
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.sqlite*"))
