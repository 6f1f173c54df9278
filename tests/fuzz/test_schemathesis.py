"""Fuzz the real local server with schemathesis against the committed OpenAPI document.

A small run (``FUZZ_EXAMPLES``, default 300 requests) is part of ``make test``; ``make fuzz`` runs
``scripts/fuzz.py`` with 2,000 or more. Every operation, with a valid key and with none, positive and
negative generation; zero 5xx and zero responses that violate the document are allowed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from labelwise.settings import Settings

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.model, pytest.mark.fuzz, pytest.mark.slow]


def load_fuzz_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("labelwise_fuzz_script", REPO / "scripts" / "fuzz.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fuzz_script() -> ModuleType:
    pytest.importorskip("schemathesis", reason="schemathesis is in the [dev] extra: make venv")
    model_dir = Settings.from_environ().model_dir
    if not (model_dir / "multilingual-e5-small" / "model.onnx").exists():
        pytest.skip(f"int8 models not built in {model_dir}: run `make model`")
    return load_fuzz_script()


@pytest.fixture(scope="module")
def server(fuzz_script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    live = fuzz_script.start_server(tmp_path_factory.mktemp("fuzz-data"))
    try:
        yield live
    finally:
        live.stop()


def test_fuzzed_requests_get_no_5xx_and_conform_to_the_document(
    fuzz_script: ModuleType, server: object
) -> None:
    # Given the real server with a valid key, and the committed OpenAPI document
    examples = int(os.environ.get("FUZZ_EXAMPLES", "300"))
    # When schemathesis sends generated requests to every operation, with the key and without
    report = fuzz_script.fuzz(server, examples, seed=None).as_dict()
    # Then every request got an answer, none a 5xx, and every answer matches the document
    assert report["requests"] >= examples
    assert set(report["requests_by_auth"]) == {"with-key", "no-key"}
    assert report["server_errors"] == 0, json.dumps(report, indent=2)
    assert report["failed_checks"] == 0, json.dumps(report["distinct_failures"], indent=2)[:8000]
