"""Slow and silent clients cannot hold `labelwise serve` (the local adapter: real sockets).

``http.server`` gives every connection a thread and, by default, waits forever on its socket: a
client that connects and sends nothing, or announces a body and stops half-way, held a thread for
good, and any number of such connections were accepted (one thread each). The server now closes a
connection silent for ``http_idle_timeout_s`` or whose request takes longer than
``http_request_timeout_s`` to arrive (a 408 in the error envelope when a body was under way), and
answers a 503 at once to connections beyond ``http_max_connections``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from urllib.parse import urlsplit

import pytest
import requests

from labelwise.embedding.registry import ModelRegistry
from labelwise.server import running_server
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder

IDLE_TIMEOUT_S = 0.5
REQUEST_TIMEOUT_S = 1.5
MAX_CONNECTIONS = 3
#: How long the client waits before deciding the server will never answer.
CLIENT_PATIENCE_S = 10.0


@pytest.fixture
def base_url(settings: Settings) -> Iterator[str]:
    strict = settings.model_copy(
        update={
            "require_auth": False,
            "http_idle_timeout_s": IDLE_TIMEOUT_S,
            "http_request_timeout_s": REQUEST_TIMEOUT_S,
            "http_max_connections": MAX_CONNECTIONS,
        }
    )
    services = Services(settings=strict, registry=ModelRegistry.from_embedders([HashingEmbedder()]))
    with running_server(services) as url:
        yield url


def _connect(base_url: str) -> socket.socket:
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=CLIENT_PATIENCE_S)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _status_and_body(raw: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_a_silent_connection_is_closed_after_the_idle_timeout(base_url: str) -> None:
    # Given a client that connects and sends nothing
    with _connect(base_url) as sock:
        started = time.monotonic()
        # When it waits
        raw = _read_until_closed(sock)
        waited = time.monotonic() - started
    # Then the server hangs up (no request was under way, so nothing is answered), well before the
    # client would have given up
    assert raw == b""
    assert waited < CLIENT_PATIENCE_S / 2


def test_silent_connections_give_their_threads_back(base_url: str) -> None:
    # Given the server's threads before, and as many silent clients as it admits
    before = threading.active_count()
    with ExitStack() as stack:
        socks = [stack.enter_context(_connect(base_url)) for _ in range(MAX_CONNECTIONS)]
        time.sleep(0.1)
        during = threading.active_count()
        # When they stay silent past the timeout
        for sock in socks:
            assert _read_until_closed(sock) == b""
    # Then each held one thread while open, and every one of them is gone afterwards
    assert during == before + MAX_CONNECTIONS
    deadline = time.monotonic() + CLIENT_PATIENCE_S
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before


def test_a_body_that_stops_half_way_gets_a_408_in_the_envelope(base_url: str) -> None:
    # Given a request that announces 100 bytes of body and sends 10
    with _connect(base_url) as sock:
        sock.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n" + b'{"input": '
        )
        # When the rest never comes
        raw = _read_until_closed(sock)
    # Then the server answers 408 in the error envelope and closes the connection
    status, body = _status_and_body(raw)
    assert status == 408
    assert body["code"] == "REQUEST_TIMEOUT" and body["request_id"]
    assert b"connection: close" in raw.lower()


def test_connections_beyond_the_cap_get_a_503_at_once_and_capacity_comes_back(base_url: str) -> None:
    with ExitStack() as stack:
        # Given as many open, silent connections as the server admits
        held = [stack.enter_context(_connect(base_url)) for _ in range(MAX_CONNECTIONS)]
        time.sleep(0.1)
        # When one more client connects and asks
        with _connect(base_url) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            raw = _read_until_closed(extra)
        # Then it is told at once that the server is busy, in the error envelope
        status, body = _status_and_body(raw)
        assert status == 503 and body["code"] == "SERVICE_UNAVAILABLE" and body["request_id"]
        assert b"retry-after" in raw.lower()
        assert len(held) == MAX_CONNECTIONS
    # And once those connections are gone, requests are served again
    deadline = time.monotonic() + CLIENT_PATIENCE_S
    while True:
        r = requests.get(f"{base_url}/health", timeout=CLIENT_PATIENCE_S)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert r.status_code == 200


def test_a_kept_alive_connection_serves_requests_until_it_goes_quiet(base_url: str) -> None:
    # Given a client that keeps its connection open between requests
    with requests.Session() as session:
        # When it sends requests closer together than the idle timeout
        statuses = []
        for _ in range(3):
            statuses.append(session.get(f"{base_url}/health", timeout=CLIENT_PATIENCE_S).status_code)
            time.sleep(IDLE_TIMEOUT_S / 5)
        # Then every one is answered
        assert statuses == [200, 200, 200]
        # And after a quiet spell longer than the timeout, the session still works (on a new connection)
        time.sleep(IDLE_TIMEOUT_S * 3)
        assert session.get(f"{base_url}/health", timeout=CLIENT_PATIENCE_S).status_code == 200


def test_a_client_trickling_its_headers_is_cut_off_at_the_request_timeout(base_url: str) -> None:
    # Given a client that sends its request head one byte at a time, each byte inside the idle timeout
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    with _connect(base_url) as sock:
        started = time.monotonic()
        closed_after: float | None = None
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # the server has closed the connection
                closed_after = time.monotonic() - started
                break
            time.sleep(IDLE_TIMEOUT_S / 3)
        # When the whole request has not arrived within the request timeout
        # Then the server has closed the connection without serving it, soon after that timeout
        assert closed_after is not None, "the server kept reading a trickled request"
        assert REQUEST_TIMEOUT_S <= closed_after < REQUEST_TIMEOUT_S + 2 * IDLE_TIMEOUT_S + 1.0
        sock.settimeout(CLIENT_PATIENCE_S)
        with contextlib.suppress(ConnectionResetError):  # a reset is a close too
            assert b"200 OK" not in _read_until_closed(sock)


def test_silent_connections_past_the_cap_do_not_hold_up_the_accepting_thread(base_url: str) -> None:
    with ExitStack() as stack:
        # Given the cap held, and ten more connections that say nothing
        for _ in range(MAX_CONNECTIONS):
            stack.enter_context(_connect(base_url))
        silent = [stack.enter_context(_connect(base_url)) for _ in range(10)]
        # When one more client asks
        started = time.monotonic()
        with _connect(base_url) as extra:
            extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            raw = _read_until_closed(extra)
        waited = time.monotonic() - started
        # Then its 503 comes at once: refusing the silent ones waited for none of them
        assert _status_and_body(raw)[0] == 503
        assert waited < 1.0, f"{waited:.2f} s"
        # And the silent ones are refused too, each told why before the server hangs up
        for sock in silent:
            assert _status_and_body(_read_until_closed(sock))[0] == 503
