"""scripts/bench_worker.py, the labelwise side of `make bench`, on a tiny model (no timing goals)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.support.tiny import WORDS, write_tiny_model

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "scripts" / "bench_worker.py"


def _run(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(WORKER), *args, "--t0", repr(time.time())],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def test_worker_reports_cold_start_and_throughput_over_every_text(tmp_path: Path) -> None:
    # Given a tiny int8 model and a file of 10 texts
    write_tiny_model(tmp_path / "m")
    texts = tmp_path / "texts.json"
    texts.write_text(json.dumps([" ".join(WORDS[i : i + 3]) for i in range(10)]), encoding="utf-8")
    common = ["--engine", "onnx", "--model-dir", str(tmp_path / "m"), "--texts", str(texts), "--batch", "4"]
    # When the worker runs a full measurement, and a cold-only one
    full = _run(*common, "--repeats", "2")
    cold = _run(*common, "--cold-only")
    # Then both report a cold start, and the full run timed all 10 texts
    assert 0 < full["cold_start_s"] < 120 and 0 < cold["cold_start_s"] < 120
    assert full["n"] == 10 and full["texts_per_s"] > 0 and full["texts_per_cpu_s"] > 0
    assert full["seconds"] > 0 and abs(full["texts_per_s"] * full["seconds"] - 10) < 1e-6
    assert "texts_per_s" not in cold
