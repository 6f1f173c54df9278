"""The embedding endpoint for real: the server CLI on loopback (CPU) with the built models, called over
HTTP by the adapter the Lambda uses; the boto3 ``invoke_endpoint`` path against moto's server with
queued results; and an endpoint that is down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from labelwise.embedding.manifest import MANIFEST_FILE
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.endpoint import (
    EndpointEmbedder,
    HttpTransport,
    RoutingEmbedder,
    SageMakerTransport,
    endpoint_transport,
    routing_factory,
    track_backend,
)
from labelwise.endpoint.protocol import InvocationResponse, encode_vectors
from labelwise.errors import EmbedderUnavailable, InputTooLong, InvalidImage, UnsupportedInput
from labelwise.settings import Settings
from tests.support.moto_server import free_port, moto_server

REPO = Path(__file__).resolve().parents[2]
TEXT_MODEL = "multilingual-e5-small"
IMAGE_MODEL = "efficientnet-lite0"


@pytest.fixture(scope="module")
def model_root() -> Path:
    root = Settings.from_environ().model_dir
    if not (root / TEXT_MODEL / MANIFEST_FILE).exists():
        pytest.skip(f"text model not built: {root / TEXT_MODEL} (run `make model`)")
    return root


@pytest.fixture(scope="module")
def endpoint_url(model_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m labelwise.endpoint.container`` on 127.0.0.1 (CPU), serving the built models."""
    # Only the finished model directories (a model being built elsewhere is not served half-written).
    served = tmp_path_factory.mktemp("served-models")
    for name in (TEXT_MODEL, IMAGE_MODEL):
        if (model_root / name / MANIFEST_FILE).exists():
            (served / name).symlink_to(model_root / name)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "shared")}
    process = subprocess.Popen(
        [sys.executable, "-m", "labelwise.endpoint.container", "--host", "127.0.0.1", "--port", str(port),
         "--model-dir", str(served), "--provider", "cpu", "--threads", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                out = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"endpoint server exited: {out[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("endpoint server did not become ready in 120 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def local_text(model_root: Path) -> OnnxEmbedder:
    return OnnxEmbedder.from_dir(model_root / TEXT_MODEL, intra_op_threads=1)


# ------------------------------------------------------------------------------------ HTTP path
@pytest.mark.model
@pytest.mark.slow
def test_ping_reports_ready_and_the_cpu_provider(endpoint_url: str) -> None:
    with urllib.request.urlopen(f"{endpoint_url}/ping", timeout=5) as response:
        body = json.loads(response.read())
    assert response.status == 200 and body == {"status": "ok", "provider": "CPUExecutionProvider"}


@pytest.mark.model
@pytest.mark.slow
def test_texts_through_the_endpoint_equal_in_process_embeddings(
    endpoint_url: str, local_text: OnnxEmbedder
) -> None:
    # Given the adapter the Lambda uses, over HTTP to the server, with the local manifest
    remote = EndpointEmbedder(HttpTransport(endpoint_url), manifest=local_text.manifest)
    texts = ["Refund my last order please", "Où est mon colis ?", "a " * 700]

    # When the same texts are embedded remotely and in-process
    got = remote.embed(texts, "input")
    want = local_text.embed(texts, "input")

    # Then vectors, token counts and truncation flags agree (same code, same model files)
    np.testing.assert_allclose(got.vectors, want.vectors, atol=1e-6)
    assert got.token_counts == want.token_counts and got.truncated == want.truncated
    assert remote.last_provider == "CPUExecutionProvider"
    assert remote.count_tokens(texts, "label") == local_text.count_tokens(texts, "label")


@pytest.mark.model
@pytest.mark.slow
def test_endpoint_input_errors_arrive_as_the_same_domain_errors(
    endpoint_url: str, local_text: OnnxEmbedder
) -> None:
    remote = EndpointEmbedder(HttpTransport(endpoint_url), manifest=local_text.manifest)
    with pytest.raises(InputTooLong):
        remote.embed(["word " * 1000], "input", truncate="none")
    # (a 400 either way: not an image, or no image model on this endpoint)
    with pytest.raises((InvalidImage, UnsupportedInput)):
        remote.zero_shot_vectors([b"definitely not an image"])


@pytest.mark.model
@pytest.mark.slow
def test_images_through_the_endpoint_equal_in_process(endpoint_url: str, model_root: Path) -> None:
    if not (model_root / IMAGE_MODEL / MANIFEST_FILE).exists():
        pytest.skip(f"image model not built: {model_root / IMAGE_MODEL}")
    from labelwise.embedding.image_factory import image_embedder_factory

    # Given two decoded images and the in-process image model
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), np.full((64, 64, 3), 200, np.uint8)]
    local = image_embedder_factory(model_root / IMAGE_MODEL)

    # When they go through the endpoint (sent as lossless PNG)
    remote = EndpointEmbedder(HttpTransport(endpoint_url))
    zero_shot = remote.zero_shot_vectors(images)
    features = remote.features(images)

    # Then the vectors match in-process ones
    np.testing.assert_allclose(zero_shot, local.zero_shot_vectors(images).vectors, atol=1e-5)
    np.testing.assert_allclose(features, local.features(images).vectors, atol=1e-5)


@pytest.mark.model
def test_cuda_requested_where_onnxruntime_has_no_cuda_stays_up_unhealthy(model_root: Path) -> None:
    import urllib.error

    # Given the server started with --provider cuda where onnxruntime offers no CUDA (the CPU wheel)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "shared")}
    process = subprocess.Popen(
        [sys.executable, "-m", "labelwise.endpoint.container", "--host", "127.0.0.1", "--port", str(port),
         "--model-dir", str(model_root), "--provider", "cuda"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # When /ping is polled until it answers
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "the server exited instead of reporting unhealthy"
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                pytest.fail("/ping answered 200 with CUDA requested and absent")
            except urllib.error.HTTPError as exc:
                status, body = exc.code, json.loads(exc.read())
                if body.get("status") == "unhealthy":  # not the 503 while loading
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "no unhealthy /ping answer in 60 s"
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=10)

    # Then it is 503 with the reason (SageMaker's health check fails instead of serving on the CPU)
    assert status == 503 and body["status"] == "unhealthy"
    assert "CUDA was requested but is unavailable" in body["reason"]


# ---------------------------------------------------------------------------------- endpoint down
@pytest.mark.model
def test_endpoint_down_falls_back_or_fails_as_configured(local_text: OnnxEmbedder) -> None:
    # Given a port nobody listens on
    dead = f"http://127.0.0.1:{free_port()}"
    remote = EndpointEmbedder(HttpTransport(dead, timeout_s=2), manifest=local_text.manifest)
    texts = [f"text number {i}" for i in range(5)]

    # When fallback is "fail": a clear EmbedderUnavailable (503)
    failing = RoutingEmbedder(local_text, remote, threshold=2, fallback="fail")
    with pytest.raises(EmbedderUnavailable, match="unreachable"):
        failing.embed(texts, "input")

    # When fallback is "local": the in-process answer, reported as a fallback
    falling_back = RoutingEmbedder(local_text, remote, threshold=2, fallback="local")
    with track_backend() as record:
        batch = falling_back.embed(texts, "input")
    assert record.value == "fallback"
    np.testing.assert_allclose(batch.vectors, local_text.embed(texts, "input").vectors, atol=1e-6)


# ------------------------------------------------------------------------ SageMaker path (moto)
@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    with moto_server() as url:
        yield url


def queue_results(moto_url: str, bodies: list[str]) -> None:
    """Queue invoke_endpoint answers in moto (POST /moto-api/static/sagemaker/endpoint-results)."""
    payload = {
        "account_id": "123456789012",
        "region": "us-east-1",
        "results": [
            {"Body": body, "ContentType": "application/json", "InvokedProductionVariant": "AllTraffic"}
            for body in bodies
        ],
    }
    request = urllib.request.Request(
        f"{moto_url}/moto-api/static/sagemaker/endpoint-results",
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def test_invoke_endpoint_through_boto3_against_moto(moto: str) -> None:
    import boto3

    from tests.support.fakes import HashingEmbedder

    # Given moto's queue holding the endpoint's answer for two texts
    fake = HashingEmbedder()
    expected = fake.embed(["hello world", "bonjour"], "input")
    answer = InvocationResponse(
        model="fake-model",
        provider="CUDAExecutionProvider",
        dimension=64,
        count=2,
        vectors=encode_vectors(expected.vectors, "base64"),
        token_counts=expected.token_counts,
        truncated=expected.truncated,
    )
    queue_results(moto, [answer.model_dump_json(), "<html>not the protocol</html>"])
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    transport = SageMakerTransport.create("labelwise-embeddings", endpoint_url=moto, session=session)
    remote = EndpointEmbedder(transport, manifest=fake.manifest)

    # When the adapter invokes the endpoint through boto3's sagemaker-runtime client
    batch = remote.embed(["hello world", "bonjour"], "input")

    # Then the queued answer is decoded into the same vectors
    np.testing.assert_allclose(batch.vectors, expected.vectors)
    assert batch.token_counts == expected.token_counts and remote.last_provider == "CUDAExecutionProvider"

    # And an answer outside the protocol is a clear EmbedderUnavailable
    with pytest.raises(EmbedderUnavailable, match="unreadable"):
        remote.embed(["another request"], "input")


def test_settings_with_an_endpoint_name_route_large_batches_to_sagemaker(
    moto: str, settings: Settings
) -> None:
    from tests.support.fakes import HashingEmbedder

    # Given Settings naming a SageMaker endpoint (moto), threshold 1
    fake = HashingEmbedder()
    configured = settings.model_copy(
        update={"sagemaker_endpoint_name": "labelwise-embeddings", "aws_endpoint_url": moto,
                "endpoint_batch_threshold": 1}
    )  # fmt: skip
    vectors = np.eye(64, dtype=np.float32)[:3]
    answer = InvocationResponse(
        model="fake-model", provider="CPUExecutionProvider", dimension=64, count=3,
        vectors=encode_vectors(vectors, "list"), token_counts=[3, 3, 3], truncated=[False] * 3,
        encoding="list",
    )  # fmt: skip
    queue_results(moto, [answer.model_dump_json()])
    embedder = routing_factory(configured, local_factory=lambda _: fake)(configured.model_dir)
    assert isinstance(embedder, RoutingEmbedder)

    # When three texts are embedded
    with track_backend() as record:
        batch = embedder.embed(["a", "b", "c"], "input")

    # Then SageMaker answered
    assert record.value == "endpoint"
    np.testing.assert_allclose(batch.vectors, vectors)


def test_sagemaker_client_tries_once_with_an_8_s_read_timeout_then_the_router_falls_back() -> None:
    import http.server
    import threading

    import boto3

    from tests.support.fakes import HashingEmbedder

    # Given a stand-in for sagemaker-runtime on loopback that counts calls and answers 503 (retryable)
    calls: list[str] = []

    class Unavailable(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            calls.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            body = b'{"__type": "ServiceUnavailable", "message": "busy"}'
            self.send_response(503)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    settings = Settings.from_environ(
        {"LABELWISE_SAGEMAKER_ENDPOINT_NAME": "labelwise-embeddings", "LABELWISE_AWS_ENDPOINT_URL": url}
    )
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    try:
        # When the transport is wired from the default settings and invoked once
        transport = endpoint_transport(settings, session)
        assert isinstance(transport, SageMakerTransport)
        fake = HashingEmbedder()
        with pytest.raises(EmbedderUnavailable):
            EndpointEmbedder(transport, manifest=fake.manifest).embed(["hello"], "input")
        # Then it made exactly one attempt, with an 8 s read timeout (the API's 30 s budget leaves
        # room to embed in-process after it)
        assert len(calls) == 1
        config = transport._client.meta.config
        assert config.read_timeout == 8.0 and config.connect_timeout <= 2
        # And the router then embeds in-process (the default fallback)
        router = RoutingEmbedder(fake, EndpointEmbedder(transport, manifest=fake.manifest), threshold=0)
        batch = router.embed(["hello"], "input")
        np.testing.assert_allclose(batch.vectors, fake.embed(["hello"], "input").vectors)
        assert len(calls) == 2
    finally:
        server.shutdown()
