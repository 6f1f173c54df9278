"""End-to-end fixtures: the real `labelwise serve` process with the real int8 models, over HTTP."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from labelwise.settings import Settings

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def model_dir() -> Path:
    return Settings.from_environ().model_dir


def require_models() -> None:
    if not (model_dir() / "multilingual-e5-small" / "model.onnx").exists():
        pytest.skip(f"int8 models not built in {model_dir()}: run `make model`")


@dataclass
class LiveServer:
    url: str
    key: str | None
    process: subprocess.Popen[str]
    data_dir: Path

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    data_dir: Path,
    extra_env: dict[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> LiveServer:
    """``labelwise serve`` on a free port; ``preexec_fn`` runs in the child first (e.g. setrlimit)."""
    port = free_port()
    env = {**os.environ, "LABELWISE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "labelwise.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=preexec_fn,
    )
    url = f"http://127.0.0.1:{port}"
    output: list[str] = []
    key = None
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                raise RuntimeError("server exited:\n" + "".join(output))
            continue
        output.append(line)
        found = re.search(r"\b(lw_[A-Za-z0-9_-]{20,})\b", line)
        if found:
            key = found.group(1)
        if "listening on" in line:
            break
    else:
        process.kill()
        raise RuntimeError("server did not start:\n" + "".join(output))
    return LiveServer(url=url, key=key, process=process, data_dir=data_dir)


def stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    require_models()
    server = start_server(tmp_path_factory.mktemp("serve-data"))
    try:
        requests.get(f"{server.url}/health", timeout=30).raise_for_status()
        yield server
    finally:
        stop_server(server)
