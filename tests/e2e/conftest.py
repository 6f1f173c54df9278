"""End-to-end fixtures: the real `labelwise serve` process with the real int8 models, over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from labelwise.evaluation.serve import ServerProcess, start_serve
from labelwise.settings import Settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def model_dir() -> Path:
    return Settings.from_environ().model_dir


def require_models() -> None:
    if not (model_dir() / "multilingual-e5-small" / "model.onnx").exists():
        pytest.skip(f"int8 models not built in {model_dir()}: run `make model`")


@dataclass
class LiveServer(ServerProcess):
    """``labelwise serve`` in a process of its own, and its data dir."""

    data_dir: Path = Path()


def start_server(
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> LiveServer:
    """``labelwise serve`` on a free port; ``preexec_fn`` runs in the child first (e.g. setrlimit)."""
    server = start_serve(data_dir, extra_env, preexec_fn=preexec_fn, timeout_s=120)
    return LiveServer(server.url, server.key, server.process, data_dir)


def stop_server(server: LiveServer) -> None:
    server.stop()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_models()
    server = start_server(tmp_path_factory.mktemp("serve-data"))
    try:
        requests.get(f"{server.url}/health", timeout=30).raise_for_status()
        yield server
    finally:
        stop_server(server)
