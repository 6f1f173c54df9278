"""The local HTTP adapter: real sockets, the same resolver as Lambda, over a fake embedder."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from labelwise.embedding.registry import ModelRegistry
from labelwise.server import http_event, make_server, running_server
from labelwise.services import Services
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


# --- HTTP edge cases (issue 12, item 6) ------------------------------------------------------------


def raw_exchange(base_url: str, request: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, half-close, and parse the one HTTP response (status, headers, body)."""
    import socket

    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data, "the server closed the connection without an answer"
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", len(body)))
    return status, headers, body[:length]


def envelope(body: bytes) -> dict[str, str]:
    out = json.loads(body)
    assert out["code"] and out["detail"] and out["request_id"], out
    return out


CLASSIFY = b'{"labels": ["refund", "delay"], "input": ["refund now"]}'


@pytest.mark.parametrize("length", ["-1", "-100", "abc", "1e3", "12 34", " "])
def test_a_bad_content_length_is_a_400_in_the_envelope(base_url: str, length: str) -> None:
    # Given a request whose Content-Length is negative or not a number
    request = (
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {length}\r\n\r\n".encode()
        + CLASSIFY
    )
    # When it is sent
    status, headers, body = raw_exchange(base_url, request)
    # Then the server refuses it with a 400 in the error envelope (no traceback, no empty reply)
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert envelope(body)["code"] == "INPUT_INVALID_CONTENT_LENGTH"


def test_conflicting_content_lengths_are_a_400(base_url: str) -> None:
    request = (
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 60\r\n\r\n" + CLASSIFY
    )
    status, _, body = raw_exchange(base_url, request)
    assert status == 400 and envelope(body)["code"] == "INPUT_INVALID_CONTENT_LENGTH"


SMALL_BODY_LIMIT = 2048


@pytest.fixture
def small_limit_url(settings: Settings) -> Iterator[str]:
    """A server accepting bodies of at most ``SMALL_BODY_LIMIT`` bytes."""
    small = settings.model_copy(update={"require_auth": False, "max_body_bytes": SMALL_BODY_LIMIT})
    services = Services(settings=small, registry=ModelRegistry.from_embedders([HashingEmbedder()]))
    with running_server(services) as url:
        yield url


def chunked(*pieces: bytes, trailer: bytes = b"") -> bytes:
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n" + trailer + b"\r\n"


def test_a_chunked_post_is_decoded_and_served(base_url: str) -> None:
    # Given a classify request whose body is sent chunked (no Content-Length), in three pieces
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    pieces = [CLASSIFY[:10], CLASSIFY[10:30], CLASSIFY[30:]]
    # When it is posted, and then a second request is sent on the same connection
    conn.request(
        "POST", "/v1/classify", body=iter(pieces), headers={"Content-Type": "application/json"},
        encode_chunked=True,
    )  # fmt: skip
    first = conn.getresponse()
    first_body = json.loads(first.read())
    conn.request("GET", "/health")
    second = conn.getresponse()
    # Then the decoded body is classified, and the connection stays usable (the body was consumed)
    assert first.status == 200, first_body
    assert first_body["data"][0]["prediction"] == "refund"
    assert second.status == 200 and json.loads(second.read())["status"]
    conn.close()


def test_chunk_extensions_and_trailers_are_accepted(base_url: str) -> None:
    # Given a chunked body with a chunk extension and a trailer field
    body = f"{len(CLASSIFY):x};name=value\r\n".encode() + CLASSIFY + b"\r\n0\r\nX-Checksum: none\r\n\r\n"
    request = b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    # When it is sent
    status, _, answer = raw_exchange(base_url, request)
    # Then it is served like the plain body
    assert status == 200 and json.loads(answer)["data"][0]["prediction"] == "refund"


@pytest.mark.parametrize("sizes", [[SMALL_BODY_LIMIT + 1], [1000, 1000, 49]])
def test_an_oversized_chunked_body_is_a_413(small_limit_url: str, sizes: list[int]) -> None:
    # Given chunks adding up to more than the body limit (one huge chunk, or several that pass it);
    # the chunk that passes the limit is announced but not sent, as a client would wait for the answer
    *sent, last = sizes
    head = b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"".join(f"{n:x}\r\n".encode() + b"a" * n + b"\r\n" for n in sent) + f"{last:x}\r\n".encode()
    # When it is sent
    status, headers, answer = raw_exchange(small_limit_url, head + body)
    # Then the server refuses it with a 413 in the envelope, as for an oversized Content-Length
    assert status == 413 and envelope(answer)["code"] == "INPUT_PAYLOAD_TOO_LARGE"
    assert headers["connection"] == "close"


def test_a_chunked_body_within_the_limit_is_served(small_limit_url: str) -> None:
    # Given a chunked body of exactly the limit (padded JSON)
    padded = CLASSIFY[:-1] + b" " * (SMALL_BODY_LIMIT - len(CLASSIFY)) + b"}"
    assert len(padded) == SMALL_BODY_LIMIT
    request = b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    # When it is sent in two chunks
    status, _, answer = raw_exchange(small_limit_url, request + chunked(padded[:1500], padded[1500:]))
    # Then it is served
    assert status == 200, answer


MALFORMED_CHUNKED = {
    "size-not-hex": b"zz\r\n" + CLASSIFY + b"\r\n0\r\n\r\n",
    "negative-size": b"-5\r\n" + CLASSIFY + b"\r\n0\r\n\r\n",
    "no-crlf-after-data": f"{len(CLASSIFY):x}\r\n".encode() + CLASSIFY + b"XX0\r\n\r\n",
    "ends-inside-a-chunk": f"{len(CLASSIFY) + 40:x}\r\n".encode() + CLASSIFY,
    "no-last-chunk": f"{len(CLASSIFY):x}\r\n".encode() + CLASSIFY + b"\r\n",
    "no-end-of-trailers": f"{len(CLASSIFY):x}\r\n".encode() + CLASSIFY + b"\r\n0\r\n",
    "size-line-too-long": b"1" + b" " * 4096,  # one byte past the longest line read, no CRLF
}


@pytest.mark.parametrize("body", list(MALFORMED_CHUNKED.values()), ids=list(MALFORMED_CHUNKED))
def test_a_malformed_chunked_body_is_a_400(base_url: str, body: bytes) -> None:
    # Given a chunked body whose framing is broken
    request = b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    # When it is sent (and the client stops sending)
    status, headers, answer = raw_exchange(base_url, request)
    # Then the answer is a 400 in the envelope, not a hang, a traceback or an empty reply
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert envelope(answer)["code"] == "INPUT_INVALID_CHUNKED_BODY"


def test_chunked_with_a_content_length_is_refused(base_url: str) -> None:
    # Given both framings at once (the request-smuggling shape)
    request = (
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunked(CLASSIFY)
    )
    # When it is sent
    status, _, answer = raw_exchange(base_url, request)
    # Then neither is trusted: 400
    assert status == 400 and envelope(answer)["code"] == "INPUT_INVALID_CONTENT_LENGTH"


@pytest.mark.parametrize("coding", ["gzip", "gzip, chunked", "identity"])
def test_a_transfer_coding_other_than_chunked_is_a_501(base_url: str, coding: str) -> None:
    # Given a body in a transfer coding the server does not decode
    request = (
        b"POST /v1/classify HTTP/1.1\r\nHost: x\r\n"
        + f"Transfer-Encoding: {coding}\r\n\r\n".encode()
        + chunked(CLASSIFY)
    )
    # When it is sent
    status, headers, answer = raw_exchange(base_url, request)
    # Then the server says it is not implemented (RFC 9112 6.1), in the envelope
    assert status == 501 and headers["content-type"].startswith("application/json")
    assert envelope(answer)["code"] == "INPUT_UNSUPPORTED_TRANSFER_ENCODING"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PATCH", "/v1/classify", "POST"),
        ("TRACE", "/v1/classify", "POST"),
        ("PUT", "/health", "GET, HEAD"),
        ("PATCH", "/v1/classifiers/abc", "DELETE, GET, HEAD"),
        ("DELETE", "/v1/classifiers", "GET, HEAD, POST"),
        ("TRACE", "/health", "GET, HEAD"),
        ("PATCH", "/openapi.json", "GET, HEAD"),
        ("TRACE", "/openapi.json", "GET, HEAD"),
        ("POST", "/docs", "GET, HEAD"),
    ],
)
def test_a_wrong_method_on_a_route_is_405_with_allow(
    base_url: str, method: str, path: str, allow: str
) -> None:
    # When a route is called with a method it does not serve
    request = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
    status, headers, body = raw_exchange(base_url, request)
    # Then the answer is 405, names the allowed methods, and is JSON
    assert status == 405
    assert headers["allow"] == allow
    assert headers["content-type"].startswith("application/json")
    assert envelope(body)["code"] == "METHOD_NOT_ALLOWED"


def test_an_unknown_method_gets_the_json_envelope(base_url: str) -> None:
    status, headers, body = raw_exchange(base_url, b"FROB /v1/classify HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status in (405, 501)
    assert headers["content-type"].startswith("application/json") and envelope(body)


def test_head_on_a_get_route_answers_like_get_without_a_body(base_url: str) -> None:
    r = requests.head(f"{base_url}/health", timeout=10)
    assert r.status_code == 200 and r.content == b""


def test_an_unknown_path_is_still_404(base_url: str) -> None:
    status, headers, body = raw_exchange(
        base_url, b"PATCH /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    assert status == 404 and envelope(body)["code"] == "ROUTE_NOT_FOUND" and "allow" not in headers
