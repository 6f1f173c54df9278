"""The few-shot evaluation's smoke run (issue 11, section 3): `make eval`'s harness end to end, small.

It runs ``scripts/eval_fewshot.py --group dev --quick`` (one development set, k = 4 and 16, two
seeds, the product through the real HTTP API) and checks the result file has what the full run
reports: every method at every size, order agreement, goal lines naming their group, the git
revision and the model fingerprint. The development group is used so that CI never looks at the
test group.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, require_models

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_quick_eval_writes_every_method_with_provenance(tmp_path: Path) -> None:
    require_models()
    # Given the quick evaluation on the development group, at most 400 texts of its first set
    out = tmp_path / "fewshot-smoke.json"
    cmd = [sys.executable, str(REPO / "scripts" / "eval_fewshot.py"), "--group", "dev", "--quick"]
    cmd += ["--max-texts", "400", "--json", str(out)]

    # When it runs
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)

    # Then it succeeds and prints the goal lines of the development group
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[dev group]" in proc.stdout
    payload = json.loads(out.read_text(encoding="utf-8"))
    info = payload["info"]
    # And the file names its group, git revision and the model's fingerprint
    assert info["group"] == "dev"
    assert len(info["git_revision"]) >= 7
    assert info["model_fingerprints"]["multilingual-e5-small"]
    # And every method has a macro-F1 in [0, 1] at both sizes, few-shot through HTTP included
    (name,) = payload["datasets"]
    assert payload["datasets"][name]["group"] == "dev"
    rows = payload["aggregates"]
    methods = {r["method"] for r in rows}
    assert {"zero-shot", "few-shot", "logreg", "class-mean", "order-agreement"} <= methods, methods
    for method in ("few-shot", "logreg", "class-mean", "order-agreement"):
        sizes = {r["k"] for r in rows if r["method"] == method}
        assert sizes == {4, 16}, (method, sizes)
        # And each of them was measured over both seeds
        assert all(r["n"] == 2 for r in rows if r["method"] == method)
    assert all(0.0 <= r["mean"] <= 1.0 for r in rows)
