"""``GET /ping`` of the endpoint server when CUDA was requested: a session that fell back to the CPU
(onnxruntime does so with only a log line) makes the server unhealthy, with the reason in JSON. The
sessions are injected (this machine has no GPU); the real fallback of onnxruntime-gpu is
tests/integration/test_endpoint_container_env.py."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labelwise.embedding import onnx_embedder
from labelwise.endpoint.container import CPU, CUDA, EndpointModels, EndpointServer, make_handler
from tests.support.fakes import HashingEmbedder


class SessionOn(HashingEmbedder):
    """A text model whose onnxruntime session really uses ``providers`` (``OnnxEmbedder.providers``)."""

    def __init__(self, providers: list[str]) -> None:
        super().__init__()
        self.providers = providers


def load_with_sessions_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, session_providers: list[str], requested: str
) -> EndpointModels:
    """``EndpointModels.load`` over a model directory, with sessions that end up on ``session_providers``."""
    model = SessionOn(session_providers)
    (tmp_path / model.manifest.name).mkdir()
    model.manifest.save(tmp_path / model.manifest.name)
    asked: list[Any] = []

    def from_dir(directory: Path, **kwargs: Any) -> SessionOn:
        asked.append(kwargs["providers"])
        return model

    monkeypatch.setattr(onnx_embedder.OnnxEmbedder, "from_dir", staticmethod(from_dir))
    models = EndpointModels.load(
        tmp_path,
        providers=[CUDA, CPU],
        requested=requested,
        image_loader=lambda d, p: None,  # type: ignore[arg-type,return-value]
    )
    assert asked == [[CUDA, CPU]]
    return models


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[EndpointServer] = []

    def start(models: EndpointModels | None, failure: str | None = None) -> str:
        server = EndpointServer(("127.0.0.1", 0), make_handler(lambda: models, get_failure=lambda: failure))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_cuda_requested_but_the_session_fell_back_to_cpu_is_unhealthy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, serve: Any
) -> None:
    # Given --provider cuda, and a session created with [CUDA, CPU] that runs on the CPU only
    models = load_with_sessions_on(monkeypatch, tmp_path, [CPU], requested="cuda")

    # When SageMaker pings the server
    status, body = get(f"{serve(models)}/ping")

    # Then it is unhealthy (not 200), and says which model fell back to what
    assert status == 503
    assert body["status"] == "unhealthy" and body["provider"] == CPU
    assert "CUDA was requested" in body["reason"] and f"fake-model on {CPU}" in body["reason"]


def test_cuda_requested_and_used_is_healthy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, serve: Any
) -> None:
    # Given --provider cuda, and a session that really runs on CUDA
    models = load_with_sessions_on(monkeypatch, tmp_path, [CUDA, CPU], requested="cuda")
    # When pinged, Then healthy on CUDA
    assert get(f"{serve(models)}/ping") == (200, {"status": "ok", "provider": CUDA})


def test_auto_on_the_cpu_stays_healthy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, serve: Any) -> None:
    # Given --provider auto (CUDA when it works), and a session that fell back to the CPU
    models = load_with_sessions_on(monkeypatch, tmp_path, [CPU], requested="auto")
    # When pinged, Then healthy on the CPU (auto accepts it; the container's default is cuda)
    assert get(f"{serve(models)}/ping") == (200, {"status": "ok", "provider": CPU})


def test_a_failure_reason_answers_503_on_ping_and_invocations(serve: Any) -> None:
    # Given a server that can never become healthy (CUDA requested, onnxruntime without it)
    url = serve(None, failure="CUDA was requested but is unavailable: CUDAExecutionProvider is not available")

    # When pinged and invoked
    status, body = get(f"{url}/ping")
    request = urllib.request.Request(
        f"{url}/invocations", data=b"{}", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as invoked:
        urllib.request.urlopen(request, timeout=5)

    # Then both answer 503 with the reason
    assert status == 503 and body["status"] == "unhealthy" and "unavailable" in body["reason"]
    assert invoked.value.code == 503
    assert "unavailable" in json.loads(invoked.value.read())["error"]["detail"]
