"""Routing between in-process embedding and the endpoint, the adapter's wire handling and the server's
invocation handler, all over in-memory fakes (the HTTP and SageMaker paths are integration tests)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from PIL import Image

from labelwise.api.app import create_app
from labelwise.embedding.registry import ModelRegistry
from labelwise.endpoint import (
    BACKEND_HEADER,
    EndpointEmbedder,
    RoutingEmbedder,
    current_backend,
    image_router,
    routing_factory,
    track_backend,
)
from labelwise.endpoint.container import EndpointModels, handle_invocation
from labelwise.endpoint.protocol import InvocationRequest, decode_vectors, error_from_response
from labelwise.errors import EmbedderUnavailable, InputTooLong, InvalidImage, InvalidInput, UnsupportedInput
from labelwise.images.decode import ImageLimits
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder


class FakeImageModel:
    """Image 'embedding' = the mean colour, scaled: enough to check order and plumbing."""

    def __init__(self) -> None:
        self.calls = 0

    def zero_shot_vectors(self, images: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += 1
        return np.stack([im.reshape(-1, 3).mean(axis=0) / 255.0 for im in images]).astype(np.float32)

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.zero_shot_vectors(images) * 2


class InProcessTransport:
    """The server's invocation handler called directly: the wire format without sockets."""

    name = "in-process"

    def __init__(self, models: EndpointModels) -> None:
        self.models = models
        self.bodies: list[dict[str, Any]] = []

    def invoke(self, body: bytes) -> bytes:
        self.bodies.append(json.loads(body))
        status, payload = handle_invocation(self.models, body)
        if status != 200:
            raise error_from_response(status, payload)
        return payload


class DownTransport:
    name = "down"

    def __init__(self) -> None:
        self.calls = 0

    def invoke(self, body: bytes) -> bytes:
        self.calls += 1
        raise EmbedderUnavailable("The embedding endpoint is unreachable: connection refused")


def png(color: tuple[int, int, int], size: tuple[int, int] = (4, 4)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def remote_text() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def endpoint_models(remote_text: HashingEmbedder) -> EndpointModels:
    return EndpointModels(
        texts=ModelRegistry.from_embedders([remote_text]),
        images={"efficientnet-lite0": FakeImageModel()},
        provider="FakeExecutionProvider",
        image_limits=ImageLimits(max_bytes=64 * 1024, max_pixels=10_000),
    )


@pytest.fixture
def transport(endpoint_models: EndpointModels) -> InProcessTransport:
    return InProcessTransport(endpoint_models)


def router(
    local: HashingEmbedder, transport: Any, fallback: str = "local", threshold: int = 4
) -> RoutingEmbedder:
    remote = EndpointEmbedder(transport, manifest=local.manifest) if transport is not None else None
    return RoutingEmbedder(
        local,
        remote,
        threshold=threshold,
        fallback=fallback,
        local_images=FakeImageModel(),  # type: ignore[arg-type]
    )


# ----------------------------------------------------------------------------------- decisions
def test_small_batches_stay_local_and_large_ones_go_to_the_endpoint(
    transport: InProcessTransport, remote_text: HashingEmbedder
) -> None:
    # Given a router with threshold 4 over a local embedder and an endpoint
    local = HashingEmbedder()
    routing = router(local, transport)

    # When 4 texts, then 5 texts are embedded, each in its own tracked request
    with track_backend() as small:
        routing.embed(["a b", "c", "d", "e"], "input")
    with track_backend() as large:
        batch = routing.embed([f"text {i}" for i in range(5)], "input")

    # Then 4 ran in-process and 5 on the endpoint, and each request says so
    assert small.value == "local" and large.value == "endpoint"
    assert len(local.calls) == 1 and len(remote_text.calls) == 1
    # And the endpoint's vectors equal what the same model gives in-process
    np.testing.assert_allclose(batch.vectors, local.embed([f"text {i}" for i in range(5)], "input").vectors)


def test_without_an_endpoint_everything_is_local() -> None:
    local = HashingEmbedder()
    routing = router(local, None)
    with track_backend() as record:
        routing.embed([f"t{i}" for i in range(100)], "input")
        vectors = routing.zero_shot_vectors([np.zeros((2, 2, 3), np.uint8)])
    assert record.value == "local" and vectors.shape == (1, 3)


def test_images_go_to_the_endpoint_when_one_is_configured(transport: InProcessTransport) -> None:
    # Given a router with an endpoint, and two decoded images
    routing = router(HashingEmbedder(), transport)
    red = np.zeros((3, 5, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((2, 2, 3), np.uint8)
    blue[..., 2] = 255

    # When their zero-shot vectors and features are asked for
    with track_backend() as record:
        zero_shot = routing.zero_shot_vectors([red, blue])
        features = routing.features([red])

    # Then the endpoint answered, in order, whatever the batch size
    assert record.value == "endpoint"
    np.testing.assert_allclose(zero_shot, [[1, 0, 0], [0, 0, 1]], atol=1e-6)
    np.testing.assert_allclose(features, [[2, 0, 0]], atol=1e-6)
    assert transport.bodies[0]["kind"] == "image" and transport.bodies[1]["task"] == "features"


def test_endpoint_down_falls_back_to_local_when_the_setting_says_local() -> None:
    # Given an endpoint that is down and fallback "local"
    local, down = HashingEmbedder(), DownTransport()
    routing = router(local, down, fallback="local")

    # When a large batch and an image are embedded
    with track_backend() as record:
        batch = routing.embed([f"text {i}" for i in range(10)], "input")
        images = routing.zero_shot_vectors([np.zeros((2, 2, 3), np.uint8)])

    # Then both were tried remotely, answered locally, and the request reports a fallback
    assert down.calls == 2
    assert batch.vectors.shape == (10, 64) and images.shape == (1, 3)
    assert record.value == "fallback"


def test_endpoint_down_is_503_when_the_setting_says_fail() -> None:
    routing = router(HashingEmbedder(), DownTransport(), fallback="fail")
    with track_backend() as record, pytest.raises(EmbedderUnavailable):
        routing.embed([f"text {i}" for i in range(10)], "input")
    assert record.value == "endpoint"


def test_an_input_error_from_the_endpoint_is_the_callers_not_a_fallback(
    transport: InProcessTransport,
) -> None:
    # Given a text too long for one window, sent with truncate="none" to the endpoint
    local = HashingEmbedder()
    routing = router(local, transport, fallback="local", threshold=1)
    long_text = " ".join(f"w{i}" for i in range(30))

    # When it is embedded
    # Then the endpoint's 400 comes back as the same domain error, and nothing ran locally
    with pytest.raises(InputTooLong):
        routing.embed(["short", long_text], "input", truncate="none")
    assert local.calls == []


def test_count_tokens_never_leaves_the_process() -> None:
    down = DownTransport()
    routing = router(HashingEmbedder(), down)
    assert routing.count_tokens(["a b c"] * 100, "input") == [5] * 100
    assert down.calls == 0


def test_backend_is_none_outside_a_tracked_request_and_tracking_is_per_block() -> None:
    assert current_backend() is None
    with track_backend():
        assert current_backend() == "local"
        with track_backend() as inner:
            inner.note("fallback")
        assert current_backend() == "local"
    assert current_backend() is None


def test_image_router_without_endpoint_or_local_model() -> None:
    settings = Settings.model_validate({"data_dir": "/tmp/d", "cache_dir": "/tmp/c", "model_dir": "/tmp/m"})
    assert image_router(settings, None) is None
    routing = image_router(settings.model_copy(update={"endpoint_fallback": "local"}), None, DownTransport())
    assert routing is not None
    with pytest.raises(EmbedderUnavailable):
        routing.zero_shot_vectors([np.zeros((2, 2, 3), np.uint8)])
    local_only = RoutingEmbedder(HashingEmbedder(), None, threshold=1)
    with pytest.raises(UnsupportedInput):
        local_only.features([np.zeros((2, 2, 3), np.uint8)])


# ------------------------------------------------------------------------------- the adapter
def test_large_calls_are_split_and_keep_order_and_indices(transport: InProcessTransport) -> None:
    # Given an adapter sending at most 3 texts per request
    remote = EndpointEmbedder(transport, manifest=HashingEmbedder().manifest, max_texts=3)
    texts = [f"word{i} other{i}" for i in range(8)]

    # When 8 texts are embedded
    batch = remote.embed(texts, "label")

    # Then 3 requests went out and the result is in input order
    assert [len(b["inputs"]) for b in transport.bodies] == [3, 3, 2]
    np.testing.assert_allclose(batch.vectors, HashingEmbedder().embed(texts, "label").vectors, rtol=1e-6)
    assert batch.token_counts == [4] * 8

    # And an error in the second request names the index in the whole call
    long_text = " ".join(f"w{i}" for i in range(30))
    with pytest.raises(InputTooLong, match="Input 4 "):
        remote.embed(["a", "b", "c", "d", long_text], "input", truncate="none")


def test_manifest_is_described_by_the_endpoint_when_not_given(transport: InProcessTransport) -> None:
    remote = EndpointEmbedder(transport)
    assert remote.manifest.name == "fake-model"
    assert remote.embed(["x"], "input").vectors.shape == (1, 64)
    assert remote.last_provider == "FakeExecutionProvider"


def test_malformed_endpoint_answers_are_503() -> None:
    class Garbage:
        name = "garbage"

        def __init__(self, payload: bytes) -> None:
            self.payload = payload

        def invoke(self, body: bytes) -> bytes:
            return self.payload

    manifest = HashingEmbedder().manifest
    for payload in (b"not json", b'{"model":"m","provider":"p","dimension":2,"count":2,"vectors":"AAAA"}'):
        with pytest.raises(EmbedderUnavailable):
            EndpointEmbedder(Garbage(payload), manifest=manifest).embed(["a", "b"], "input")


def test_error_mapping_keeps_input_errors_and_hides_the_rest() -> None:
    body = json.dumps({"version": 1, "error": {"code": "INPUT_TOO_LONG", "detail": "Input 2 is too long"}})
    assert isinstance(error_from_response(400, body), InputTooLong)
    image = json.dumps({"version": 1, "error": {"code": "INPUT_INVALID_IMAGE", "detail": "bad"}})
    assert isinstance(error_from_response(400, image), InvalidImage)
    too_big = json.dumps({"version": 1, "error": {"code": "INPUT_PAYLOAD_TOO_LARGE", "detail": "big"}})
    assert isinstance(error_from_response(413, too_big), EmbedderUnavailable)
    assert isinstance(error_from_response(500, body), EmbedderUnavailable)
    assert isinstance(error_from_response(502, "<html>bad gateway</html>"), EmbedderUnavailable)


# -------------------------------------------------------------------------------- the server
def invoke(models: EndpointModels, **request: Any) -> tuple[int, dict[str, Any]]:
    status, body = handle_invocation(models, json.dumps(request).encode())
    return status, json.loads(body)


def test_server_embeds_texts_as_base64_or_lists(endpoint_models: EndpointModels) -> None:
    status, body = invoke(endpoint_models, kind="text", inputs=["hello world", "x"], role="label")
    assert status == 200 and body["count"] == 2 and body["dimension"] == 64
    assert body["provider"] == "FakeExecutionProvider" and body["model"] == "fake-model"
    from labelwise.endpoint.protocol import InvocationResponse

    vectors = decode_vectors(InvocationResponse.model_validate(body))
    status, listed = invoke(endpoint_models, inputs=["hello world", "x"], role="label", encoding="list")
    np.testing.assert_allclose(vectors, np.asarray(listed["vectors"], np.float32))


@pytest.mark.parametrize(
    ("request_body", "status", "code"),
    [
        ({"version": 2, "inputs": ["a"]}, 400, "INPUT_INVALID"),
        ({"kind": "video", "inputs": ["a"]}, 400, "INPUT_INVALID"),
        ({"inputs": ["a"], "unknown": 1}, 400, "INPUT_INVALID"),
        ({"model": "nope", "inputs": ["a"]}, 400, "INPUT_MODEL_NOT_FOUND"),
        ({"kind": "image", "inputs": ["!!!"]}, 400, "INPUT_INVALID_IMAGE"),
        (
            {"kind": "image", "inputs": [base64.b64encode(b"GIF89a not really").decode()]},
            400,
            "INPUT_INVALID_IMAGE",
        ),
        (
            {"kind": "image", "inputs": [base64.b64encode(png((1, 2, 3), (200, 200))).decode()]},
            400,
            "INPUT_INVALID_IMAGE",
        ),
        ({"kind": "image", "model": "clip-x", "inputs": []}, 400, "INPUT_MODEL_NOT_FOUND"),
    ],
)
def test_server_refuses_bad_invocations_with_codes(
    endpoint_models: EndpointModels, request_body: dict[str, Any], status: int, code: str
) -> None:
    got_status, body = invoke(endpoint_models, **request_body)
    assert (got_status, body["error"]["code"]) == (status, code)


def test_server_embedding_failure_is_503(endpoint_models: EndpointModels, monkeypatch: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(FakeImageModel, "zero_shot_vectors", broken)
    status, body = invoke(endpoint_models, kind="image", inputs=[base64.b64encode(png((0, 0, 0))).decode()])
    assert status == 503 and body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert "CUDA out of memory" in body["error"]["detail"]


def test_server_describes_its_models(endpoint_models: EndpointModels) -> None:
    status, body = invoke(endpoint_models, op="describe")
    assert status == 200 and body["default_model"] == "fake-model"
    assert {(m["name"], m["kind"]) for m in body["models"]} == {
        ("fake-model", "text"),
        ("efficientnet-lite0", "image"),
    }


def test_request_model_round_trips_defaults() -> None:
    request = InvocationRequest.model_validate_json(InvocationRequest(inputs=["a"]).model_dump_json())
    assert (request.version, request.op, request.kind, request.role, request.truncate) == (
        1, "embed", "text", "input", "pool",
    )  # fmt: skip


# --------------------------------------------------------------------- through the API routes
@pytest.mark.parametrize(("fallback", "status"), [("local", 200), ("fail", 503)])
def test_classify_with_the_endpoint_down_falls_back_or_is_503(
    settings: Settings, api_event: Any, lambda_context: Any, fallback: str, status: int
) -> None:
    # Given the classify route over a registry whose embedders route to an endpoint that is down
    configured = settings.model_copy(update={"endpoint_batch_threshold": 2, "endpoint_fallback": fallback})
    factory = routing_factory(
        configured, local_factory=lambda _: HashingEmbedder(), transport=DownTransport()
    )
    registry = ModelRegistry(
        {"fake-model": (HashingEmbedder().manifest, settings.model_dir)}, "fake-model", factory
    )
    services = Services(settings=configured, registry=registry)
    key, _ = services.keys.create("tenant", "test")
    app = create_app(services, scope="classify")
    body = {"input": ["one", "two", "three"], "labels": ["a", "b"]}

    # When three inputs (over the threshold of 2) are classified
    response = app.resolve(
        api_event("POST", "/v1/classify", body, headers={"authorization": f"Bearer {key}"}),
        lambda_context,
    )

    # Then the setting decides: answered in-process (and reported as a fallback), or a clear 503;
    # the response header says which backend answered, on errors too
    assert response["statusCode"] == status
    assert BACKEND_HEADER == "x-labelwise-backend"
    assert response["headers"][BACKEND_HEADER] == ("fallback" if fallback == "local" else "endpoint")
    if status == 503:
        assert json.loads(response["body"])["code"] == "SERVICE_UNAVAILABLE"


def test_routing_factory_without_endpoint_returns_plain_local_embedders(settings: Settings) -> None:
    local = HashingEmbedder()
    factory = routing_factory(settings, local_factory=lambda _: local)
    assert factory(settings.model_dir) is local


def test_invalid_input_subclasses_round_trip_by_code() -> None:
    from labelwise.endpoint.protocol import input_error_for

    assert isinstance(input_error_for("INPUT_INVALID", "x"), InvalidInput)
    assert input_error_for("NOT_A_CODE", "x") is None
