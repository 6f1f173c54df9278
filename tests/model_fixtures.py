"""Shared model fixtures. Enable in tests/conftest.py with ``pytest_plugins = ["model_fixtures"]``
(tests/ is on sys.path as the rootdir of conftest.py) or ``from model_fixtures import *  # noqa``.

- ``tiny_model_dir``: a tiny random-weight int8 model directory (window 8, max_input_tokens 20,
  word-level tokenizer: one whitespace-separated word of ``tests.support.tiny.WORDS`` = one token).
- ``tiny_embedder``: an OnnxEmbedder over it.
- ``built_model_dir``: ``Settings.from_environ().model_dir / <default model>``; skips when not built.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labelwise.embedding.manifest import MANIFEST_FILE
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.settings import Settings


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    from tests.support.tiny import write_tiny_model

    d = tmp_path_factory.mktemp("tiny-model")
    write_tiny_model(d)
    return d


@pytest.fixture(scope="session")
def tiny_embedder(tiny_model_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder.from_dir(tiny_model_dir, intra_op_threads=1)


@pytest.fixture(scope="session")
def built_model_dir() -> Path:
    settings = Settings.from_environ()
    d = settings.model_dir / settings.default_model
    if not (d / MANIFEST_FILE).exists():
        pytest.skip(f"model not built: {d} (run `python -m labelwise.modelbuild`)")
    return d
