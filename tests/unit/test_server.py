"""The local HTTP adapter: real sockets, the same resolver as Lambda, over a fake embedder."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from labelwise.embedding.registry import ModelRegistry
from labelwise.runtime import Services
from labelwise.server import http_event, make_server, running_server
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    no_auth = settings.model_copy(update={"require_auth": False})
    services = Services(settings=no_auth, registry=ModelRegistry.from_embedders([HashingEmbedder()]))
    with running_server(services) as url:
        yield url


def test_classify_over_http(base_url: str) -> None:
    # When a client posts a Jina-shaped request
    r = requests.post(
        f"{base_url}/v1/classify", json={"labels": ["refund", "delay"], "input": ["refund now"]}, timeout=10
    )
    # Then it gets the JSON answer with a request id header
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["data"][0]["prediction"] == "refund"
    assert r.headers["x-request-id"]


def test_openapi_and_docs_are_served(base_url: str) -> None:
    spec = requests.get(f"{base_url}/openapi.json", timeout=10).json()
    assert "/v1/classify" in spec["paths"]
    docs = requests.get(f"{base_url}/docs", timeout=10)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_health_lists_models(base_url: str) -> None:
    r = requests.get(f"{base_url}/health", timeout=10)
    assert r.status_code == 200 and r.json()["models"] == ["fake-model"]


def test_oversized_body_is_refused_before_it_is_read(base_url: str, settings: Settings) -> None:
    # Given a request announcing a body over the limit
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.putrequest("POST", "/v1/classify")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(settings.max_body_bytes + 1))
    conn.endheaders()
    # When the server answers without waiting for the body
    response = conn.getresponse()
    body = json.loads(response.read())
    # Then it is a 413 in the error envelope
    assert response.status == 413 and body["code"] == "INPUT_PAYLOAD_TOO_LARGE" and body["request_id"]


def test_non_utf8_body_is_a_clean_400(base_url: str) -> None:
    r = requests.post(
        f"{base_url}/v1/classify",
        data=b"\xff\xfe\x00garbage",
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert r.status_code in (400, 422) and "code" in r.json()


def test_http_event_has_the_api_gateway_v2_shape() -> None:
    # Given an HTTP request
    event = http_event(
        "POST", "/v1/classify?x=1", {"Host": "h", "Content-Type": "application/json"}, b"{}", "1.2.3.4", "rid"
    )
    # Then the event carries what API Gateway HTTP API (payload 2.0) sends
    assert event["version"] == "2.0" and event["rawPath"] == "/v1/classify"
    assert event["queryStringParameters"] == {"x": "1"}
    assert event["headers"]["content-type"] == "application/json"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["sourceIp"] == "1.2.3.4"
    assert event["requestContext"]["requestId"] == "rid"
    assert event["body"] == "{}" and event["isBase64Encoded"] is False


def test_deeply_nested_json_is_a_clean_400(base_url: str) -> None:
    body = "[" * 100_000 + "]" * 100_000
    r = requests.post(
        f"{base_url}/v1/classify", data=body, headers={"content-type": "application/json"}, timeout=10
    )
    assert r.status_code == 400 and r.json()["code"] == "INPUT_MALFORMED_JSON"


@pytest.mark.parametrize("error", [ConnectionResetError, BrokenPipeError, ValueError])
def test_clients_hanging_up_are_not_reported_as_server_errors(
    error: type[Exception], settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the local server
    services = Services(settings=settings, registry=ModelRegistry.from_embedders([HashingEmbedder()]))
    server = make_server(services, port=0)
    try:
        # When a request thread fails with a client disconnect (or, for contrast, a real error)
        try:
            raise error("boom")
        except Exception:
            server.handle_error(None, ("127.0.0.1", 1))
    finally:
        server.server_close()
    # Then only the real error prints a traceback
    assert ("Traceback" in capsys.readouterr().err) is (error is ValueError)
