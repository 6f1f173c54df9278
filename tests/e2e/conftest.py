"""End-to-end fixtures: the real `labelwise serve` process with the real int8 models, over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from labelwise.evaluation.serve import ServerProcess, start_serve
from labelwise.settings import Settings
from tests.support.reference import jina_contract_errors, jina_response_schema

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


@dataclass
class ContractRecorder:
    """Every JSON answer the e2e tests receive through ``requests`` from a local server, and what is
    wrong with each against the Jina reference's response schemas (issue 13 item 7)."""

    checked: list[tuple[str, str, int, str | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def record(self, response: requests.Response) -> None:
        url = urlsplit(response.url)
        if url.hostname not in ("127.0.0.1", "localhost") or "json" not in response.headers.get(
            "content-type", ""
        ):
            return
        method, status = str(response.request.method), response.status_code
        body: Any = response.json()
        self.checked.append((method, url.path, status, jina_response_schema(method, url.path, status)))
        self.errors.extend(jina_contract_errors(method, url.path, status, body))


@pytest.fixture(autouse=True)
def jina_contract(monkeypatch: pytest.MonkeyPatch) -> Iterator[ContractRecorder]:
    """Validates every answer a test receives against the reference; a violation fails the test
    (at teardown). Cohere-shaped answers are left to Cohere's SDK, which parses them in
    test_cohere_sdk.py; curl's answers (test_local_server's README examples) are not seen."""
    recorder = ContractRecorder()
    send = requests.Session.send

    def recording_send(self: requests.Session, request: Any, **kwargs: Any) -> requests.Response:
        response = send(self, request, **kwargs)
        if not kwargs.get("stream"):
            recorder.record(response)
        return response

    monkeypatch.setattr(requests.Session, "send", recording_send)
    yield recorder
    if recorder.errors:
        pytest.fail("answers outside Jina's reference schemas:\n" + "\n".join(recorder.errors[:20]))
