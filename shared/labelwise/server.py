"""Local HTTP server: the same application the Lambda functions run, on localhost, no Docker.

Each HTTP request becomes an API Gateway HTTP API (payload v2.0) event and is resolved by the same
:func:`labelwise.api.app.create_app` resolver the Lambda entry points use, so local behaviour is
the deployed behaviour. Resolvers keep per-request state on the instance (the request itself too:
``labelwise.telemetry.OwnRequestResolver``), so each server thread gets its own resolver over the
shared (thread-safe) services.

The server also answers ``/openapi.json`` and the playground page (``/playground``: static package
data in ``labelwise/playground``), which calls the public API from the browser like any client.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import importlib.resources
import io
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from labelwise import __version__
from labelwise.api.app import OPENAPI_INFO, create_app
from labelwise.api.errors import error_response, status_for
from labelwise.errors import (
    ClientTimeout,
    InvalidChunkedBody,
    InvalidContentLength,
    LabelwiseError,
    MethodNotAllowed,
    PayloadTooLarge,
    ServerBusy,
    UnsupportedTransferEncoding,
)
from labelwise.services import Services

_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
#: Longest chunk-size or trailer line read from a chunked body, and the most trailer fields.
_MAX_CHUNK_LINE = 4096
_MAX_TRAILERS = 64
#: The playground page (package data in ``labelwise/playground``), by URL path: file and content type.
PLAYGROUND_FILES = {
    "/playground": ("index.html", "text/html; charset=utf-8"),
    "/playground/": ("index.html", "text/html; charset=utf-8"),
    "/playground/playground.css": ("playground.css", "text/css; charset=utf-8"),
    "/playground/playground.js": ("playground.js", "text/javascript; charset=utf-8"),
}
#: The playground loads nothing from another host and talks only to this server.
PLAYGROUND_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; connect-src 'self'; form-action 'none'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
#: Routes the server answers itself, not the resolver: their methods.
_OWN_ROUTES = {"/openapi.json": ["GET", "HEAD"], **{path: ["GET", "HEAD"] for path in PLAYGROUND_FILES}}
#: Codes of the errors ``http.server`` itself answers (``send_error``).
_SERVER_ERROR_CODES = {
    400: "INPUT_MALFORMED_REQUEST",
    408: "REQUEST_TIMEOUT",
    414: "INPUT_URI_TOO_LONG",
    431: "INPUT_HEADERS_TOO_LARGE",
    501: "METHOD_NOT_IMPLEMENTED",
    505: "HTTP_VERSION_NOT_SUPPORTED",
}


@dataclass
class LocalLambdaContext:
    """The attributes of a Lambda context that Powertools and labelwise read."""

    function_name: str = "labelwise-local"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:local:000000000000:function:labelwise-local"
    memory_limit_in_mb: int = 2048
    aws_request_id: str = ""
    log_group_name: str = "/local/labelwise"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def http_event(
    method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str, request_id: str
) -> dict[str, Any]:
    """An API Gateway HTTP API payload-v2.0 event for one HTTP request."""
    parts = urlsplit(target)
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        text, is_b64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(body).decode("ascii"), True
    now = time.time()
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": lowered,
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": lowered.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": parts.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": is_b64,
    }
    if parts.query:
        event["queryStringParameters"] = dict(parse_qsl(parts.query, keep_blank_values=True))
    if body:
        event["body"] = text
    if "cookie" in lowered:
        event["cookies"] = [c.strip() for c in lowered["cookie"].split(";")]
    return event


class LocalApi:
    """Resolves HTTP requests with one resolver per thread over shared services."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self._local = threading.local()
        self.openapi = self._app().get_openapi_json_schema(**OPENAPI_INFO)

    def _app(self) -> APIGatewayHttpResolver:
        app: APIGatewayHttpResolver | None = getattr(self._local, "app", None)
        if app is None:
            app = create_app(self.services, scope="all")
            app.enable_swagger(path="/docs", **OPENAPI_INFO)
            self._local.app = app
        return app

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        context = LocalLambdaContext(aws_request_id=event["requestContext"]["requestId"])
        return self._app().resolve(event, context)  # type: ignore[arg-type]  # duck-typed context


class _DeadlineReader(io.RawIOBase):
    """The socket's bytes, each read waiting at most ``idle_timeout`` and never past ``deadline``
    (the current request's, :meth:`LocalHandler.handle_one_request`): past it a read raises
    ``TimeoutError``, as a socket timeout does."""

    def __init__(self, sock: socket.socket, idle_timeout: float) -> None:
        super().__init__()
        self._sock = sock
        self._idle = idle_timeout
        self.deadline: float | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        timeout = self._idle
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
            if timeout <= 0:
                raise TimeoutError("the request did not arrive within http_request_timeout_s")
        self._sock.settimeout(timeout)
        try:
            return self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(self._idle)  # writes keep the idle timeout


class LocalHandler(BaseHTTPRequestHandler):
    """One HTTP request -> an API Gateway event -> ``api`` (set on the subclass :func:`_make_handler`
    makes), plus the routes the server answers itself (``/openapi.json``) and ``http.server``'s own
    errors in the JSON error envelope."""

    api: ClassVar[LocalApi]
    server_version = f"labelwise/{__version__}"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the app logs
        return

    def setup(self) -> None:
        """Bound every read and write on the socket by ``http_idle_timeout_s`` (``http.server``
        waits forever by default: a silent client held its thread for good), and every request's
        reads by ``http_request_timeout_s`` (:class:`_DeadlineReader`). A timeout before or between
        requests, or in the headers, closes the connection (``handle_one_request``); inside a body it
        is a 408."""
        super().setup()
        self.connection.settimeout(self.idle_timeout)
        self._reader = _DeadlineReader(self.connection, self.idle_timeout)
        buffered, self.rfile = self.rfile, io.BufferedReader(self._reader)
        buffered.close()  # the socket's own reader, unused: closing it leaves the socket open

    def handle_one_request(self) -> None:
        self._reader.deadline = time.monotonic() + self.api.services.settings.http_request_timeout_s
        super().handle_one_request()

    @property
    def idle_timeout(self) -> float:
        return self.api.services.settings.http_idle_timeout_s

    @property
    def max_body(self) -> int:
        return self.api.services.settings.max_body_bytes

    def _send(self, status: int, headers: dict[str, str], body: bytes, close: bool = False) -> None:
        self.send_response(status)
        for key, value in headers.items():
            if key.lower() not in ("content-length", "connection"):
                self.send_header(key, value)
        if close:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, exc: LabelwiseError, request_id: str) -> None:
        """Answer ``exc`` in the error envelope and close: the body (if any) may be left unread."""
        status = status_for(exc)
        response = error_response(status, exc.code, exc.detail, request_id, headers=exc.headers)
        self.close_connection = True
        headers = {k: str(v) for k, v in response.headers.items()}
        body = str(response.body).encode()
        self._send(status, {"Content-Type": "application/json", **headers}, body, close=True)

    def _read_body(self) -> bytes:
        """The request body, ``Content-Length`` bytes or a decoded chunked body, at most ``max_body``."""
        codings = self.headers.get_all("Transfer-Encoding") or []
        if not codings:
            length = self._body_length()
            return self.rfile.read(length) if length else b""
        if self.headers.get_all("Content-Length"):  # both framings: the request-smuggling shape
            raise InvalidContentLength("Send Content-Length or Transfer-Encoding: chunked, not both.")
        names = [c.strip().lower() for value in codings for c in value.split(",") if c.strip()]
        if names != ["chunked"]:
            raise UnsupportedTransferEncoding(
                f"Transfer-Encoding {', '.join(names) or '(empty)'} is not supported; "
                "send the body chunked or with Content-Length."
            )
        return self._read_chunked()

    def _body_length(self) -> int:
        """The announced body size; only one non-negative decimal ``Content-Length`` is accepted."""
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return 0
        if len(set(v.strip() for v in values)) != 1 or not _DIGITS.fullmatch(values[0].strip()):
            raise InvalidContentLength("Content-Length must be one non-negative decimal number.")
        digits = values[0].strip()
        if len(digits) > 18 or int(digits) > self.max_body:
            raise PayloadTooLarge(
                f"The request body is {digits} bytes; at most {self.max_body} are accepted."
            )
        return int(digits)

    def _chunk_line(self, what: str) -> bytes:
        line = self.rfile.readline(_MAX_CHUNK_LINE + 1)
        if not line.endswith(b"\n"):
            raise InvalidChunkedBody(f"The chunked body ends early, or a {what} line is too long.")
        return line.rstrip(b"\r\n")

    def _read_chunked(self) -> bytes:
        """Decode a chunked body (RFC 9112 7.1); refused as soon as it would pass ``max_body``."""
        max_body = self.max_body
        body = bytearray()
        while True:
            size_text = self._chunk_line("chunk size").split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise InvalidChunkedBody("A chunk size must be a hexadecimal number.")
            size_text = size_text.lstrip(b"0") or b"0"
            size = int(size_text, 16) if len(size_text) <= 16 else max_body + 1
            if size == 0:
                break
            if len(body) + size > max_body:
                raise PayloadTooLarge(
                    f"The chunked request body passes {max_body} bytes; at most {max_body} are accepted."
                )
            data = self.rfile.read(size)
            if len(data) != size:
                raise InvalidChunkedBody("The chunked body ends inside a chunk.")
            body += data
            if self._chunk_line("chunk end") != b"":
                raise InvalidChunkedBody("A chunk's data must be followed by CRLF.")
        for _ in range(_MAX_TRAILERS + 1):  # trailer fields, read and dropped, then the empty line
            if self._chunk_line("trailer") == b"":
                return bytes(body)
        raise InvalidChunkedBody(f"A chunked body may carry at most {_MAX_TRAILERS} trailer fields.")

    def _serve(self) -> None:
        request_id = str(uuid.uuid4())
        path = urlsplit(self.path).path
        try:
            try:
                body = self._read_body()
            except TimeoutError as exc:
                settings = self.api.services.settings
                raise ClientTimeout(
                    f"The request body did not arrive in time (at most {settings.http_idle_timeout_s:g} s "
                    f"between bytes, {settings.http_request_timeout_s:g} s in all)."
                ) from exc
            own = _OWN_ROUTES.get(path)
            if own is not None and self.command not in own:
                raise MethodNotAllowed(f"{self.command} is not served here; use {', '.join(own)}.", own)
        except LabelwiseError as exc:
            self._refuse(exc, request_id)
            return
        if path == "/openapi.json":
            self._send(200, {"Content-Type": "application/json"}, self.api.openapi.encode())
            return
        if path in PLAYGROUND_FILES:
            self._send(200, *playground_asset(path))
            return
        method = "GET" if self.command == "HEAD" else self.command  # HEAD: GET without the body
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "content-length")
        }
        if body:  # as API Gateway passes it on: de-chunked, with its length
            headers["Content-Length"] = str(len(body))
        event = http_event(method, self.path, headers, body, self.client_address[0], request_id)
        self._send(*_http_answer(self.api.handle(event)))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The errors ``http.server`` answers itself (bad request line, unknown method, headers too
        large, ...) in the JSON error envelope instead of its HTML page."""
        short, long = self.responses.get(code, ("Error", ""))
        detail = message or short
        if explain or long:
            detail = f"{detail}: {explain or long}"
        response = error_response(
            code, _SERVER_ERROR_CODES.get(code, f"HTTP_{code}"), detail, str(uuid.uuid4())
        )
        self.close_connection = True
        self.send_response(code, message)
        for key, value in response.headers.items():
            self.send_header(key, str(value))
        body = str(response.body).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = _serve


def _make_handler(api: LocalApi) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (LocalHandler,), {"api": api})


def _http_answer(result: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of the HTTP answer to a resolver's API Gateway ``result``."""
    payload = result.get("body") or ""
    data = base64.b64decode(payload) if result.get("isBase64Encoded") else str(payload).encode("utf-8")
    answer = {k: str(v) for k, v in (result.get("headers") or {}).items()}
    for key, value in answer.items():
        if key.lower() == "allow":  # GET routes also answer HEAD here (not through API Gateway)
            answer[key] = _with_head(value)
    return int(result.get("statusCode", 500)), answer, data


def playground_asset(path: str) -> tuple[dict[str, str], bytes]:
    """The headers and body of one playground file (``path`` a key of :data:`PLAYGROUND_FILES`)."""
    name, content_type = PLAYGROUND_FILES[path]
    body = importlib.resources.files("labelwise").joinpath("playground", name).read_bytes()
    return {"Content-Type": content_type, **PLAYGROUND_HEADERS}, body


def _with_head(allow: str) -> str:
    methods = {m.strip() for m in allow.split(",") if m.strip()}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


#: How long a refused connection stays half-open after its 503 (the server's side shut for writing)
#: before it is closed: closing a socket with unread data resets the connection, and a reset that
#: arrives before the client has read the 503 can discard it.
_REFUSED_LINGER_S = 1.0
#: Refused connections lingering at once; past it the oldest is closed at once.
_MAX_REFUSED_LINGERING = 256


class LocalServer(ThreadingHTTPServer):
    """``http.server``'s threading server with a cap on connections served at once: one past
    ``max_connections`` is answered 503 with ``Retry-After`` at once and closed a moment later
    (:meth:`_refuse_busy`), so silent or slow clients cannot make the process start threads without
    bound."""

    daemon_threads = True
    allow_reuse_address = True
    #: The listen backlog (``socketserver``'s default is 5: a burst of more simultaneous connects
    #: left the rest waiting a second for the kernel's SYN-ACK retransmission).
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], max_connections: int
    ) -> None:
        super().__init__(address, handler)
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refused: collections.deque[tuple[float, socket.socket]] = collections.deque()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._refuse_busy(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse_busy(self, request: socket.socket) -> None:
        """Answer 503 without waiting on the client (the accepting thread serves everyone): read what
        has already arrived, send the answer, shut the writing side, and leave the socket to
        :meth:`service_actions` to close a moment later."""
        exc = ServerBusy(
            f"The server is serving {self.max_connections} connections (http_max_connections); retry shortly."
        )
        response = error_response(503, exc.code, exc.detail, str(uuid.uuid4()), headers=exc.headers)
        body = str(response.body).encode()
        head = ["HTTP/1.1 503 Service Unavailable", "Content-Type: application/json", "Connection: close"]
        head += [f"{k}: {v}" for k, v in response.headers.items() if k.lower() != "content-type"]
        head.append(f"Content-Length: {len(body)}")
        try:
            request.setblocking(False)
            _drain(request)
            request.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
            request.shutdown(socket.SHUT_WR)
        except OSError:
            request.close()  # the client is gone, or its buffer full: nothing more to tell it
            return
        if len(self._refused) >= _MAX_REFUSED_LINGERING:
            self._refused.popleft()[1].close()
        self._refused.append((time.monotonic() + _REFUSED_LINGER_S, request))

    def service_actions(self) -> None:
        """Close the refused connections whose linger is over (``serve_forever`` calls this between
        polls, on the accepting thread)."""
        now = time.monotonic()
        while self._refused and self._refused[0][0] <= now:
            sock = self._refused.popleft()[1]
            _drain(sock)
            sock.close()

    def server_close(self) -> None:
        super().server_close()
        while self._refused:
            self._refused.popleft()[1].close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is not a server error: no traceback for it."""
        if isinstance(sys.exc_info()[1], ConnectionResetError | BrokenPipeError):
            return
        super().handle_error(request, client_address)


def _drain(sock: socket.socket) -> None:
    """Read and drop what a non-blocking socket has received so far."""
    with contextlib.suppress(OSError):
        while sock.recv(65536):
            pass


def make_server(services: Services, host: str = "127.0.0.1", port: int = 8080) -> LocalServer:
    return LocalServer(
        (host, port), _make_handler(LocalApi(services)), services.settings.http_max_connections
    )


@contextlib.contextmanager
def running_server(services: Services, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve in a background thread; yields the base URL (``port=0`` picks a free port)."""
    server = make_server(services, host, port)
    thread = threading.Thread(target=server.serve_forever, name="labelwise-server", daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
