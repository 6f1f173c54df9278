"""Fetch an image URL without letting the caller reach anything but the public internet (SSRF).

- Only ``http`` and ``https``; no credentials in the URL.
- The host is resolved here (``socket.getaddrinfo``) and EVERY address is vetted
  (:func:`address_refusal`): it must be globally routable; loopback, private, link-local, multicast,
  reserved, unspecified, shared (CGNAT), IPv4-mapped / 6to4 / Teredo / NAT64 IPv6 and the cloud
  metadata services (169.254.169.254, fd00:ec2::254) are refused. One bad address refuses the URL.
- The connection goes to the vetted address itself (pinned: there is no second DNS lookup a
  rebinding resolver could answer differently), with ``Host`` and TLS SNI/certificate checks for the
  original name. Proxy environment variables are ignored.
- Redirects (301, 302, 303, 307, 308) are followed by hand, at most ``max_redirects``, and each
  target goes through the same checks.
- One deadline (``timeout_s``) covers every DNS lookup, connection, redirect and read; the body is
  streamed and cut at ``max_bytes`` (a larger ``Content-Length`` is refused before reading).

What came back is only bytes: :mod:`labelwise.images.decode` sniffs the format, never the headers.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

from labelwise import __version__
from labelwise.images.decode import image_error

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: host, port, seconds left -> the addresses the host resolves to (as strings).
Resolver = Callable[[str, int, float], Sequence[str]]

REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024
USER_AGENT = f"labelwise/{__version__} (image fetch)"

#: Cloud instance metadata services (AWS IPv4 and IPv6, also used by other clouds).
METADATA_ADDRESSES = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of one fetch. ``allowed_networks`` is a test hook: addresses inside these networks are
    accepted although the policy would refuse them (a local test server on 127.0.0.1). Leave it
    empty in production."""

    max_bytes: int = 8 * 1024 * 1024
    timeout_s: float = 10.0
    max_redirects: int = 3
    allowed_networks: tuple[IPNetwork, ...] = field(default=())


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` must not be contacted, or None when it is a public address."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata service address"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        if address.sixtofour is not None or address.teredo is not None:
            return "a 6to4/Teredo IPv6 address"
        if any(address in net for net in _NAT64):
            return "a NAT64 IPv6 address"
        if address.scope_id:
            return "a scoped IPv6 address"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("shared (CGNAT)", isinstance(address, ipaddress.IPv4Address) and address in _SHARED),
    )
    for name, hit in checks:
        if hit:
            return f"a {name} address"
    if not address.is_global:
        return "not a public address"
    return None


def system_resolver(host: str, port: int, timeout_s: float) -> list[str]:
    """``getaddrinfo`` (TCP). The system resolver has its own timeout; the deadline is re-checked after."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class _Target:
    """A URL this module will fetch: http(s), no credentials, a host; the port defaulted."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str, index: int) -> _Target:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise image_error(index, "malformed URL") from exc
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise image_error(index, f"only http(s) URLs are fetched, not {scheme or 'no scheme'!r}")
        if parts.username is not None or parts.password is not None:
            raise image_error(index, "URLs with credentials are not fetched")
        host = parts.hostname
        if not host:
            raise image_error(index, "the URL has no host")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(scheme, host, port or (443 if scheme == "https" else 80), path)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a vetted address; ``Host`` stays the original name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a vetted address, with SNI and certificate verification for the original name."""

    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


class ImageFetcher:
    """Fetches image URLs under a :class:`FetchPolicy`. Thread-safe; one per process is enough.

    ``resolver`` and ``tls_context`` are injectable for tests (a resolver mapping a test name to a
    local server, a context trusting a test certificate).
    """

    def __init__(
        self,
        policy: FetchPolicy,
        resolver: Resolver = system_resolver,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.policy = policy
        self._resolve = resolver
        self._tls = tls_context or ssl.create_default_context()

    # ------------------------------------------------------------------------------------ vetting
    def _allowed(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.policy.allowed_networks)

    def vet(self, host: str, port: int, index: int, deadline: float) -> str:
        """Resolve ``host`` and vet every address; the first address to connect to."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            candidates = [str(literal)]
        else:
            try:
                candidates = list(self._resolve(host, port, _left(deadline, index)))
            except (OSError, UnicodeError) as exc:
                raise image_error(index, f"cannot resolve the host {host!r}") from exc
            if not candidates:
                raise image_error(index, f"the host {host!r} has no address")
        _left(deadline, index)
        for text in candidates:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError as exc:
                raise image_error(index, f"the host {host!r} resolved to an invalid address") from exc
            if "%" in text and not self._allowed(address):
                raise image_error(index, f"the host {host!r} resolves to a scoped address")
            reason = address_refusal(address)
            if reason is not None and not self._allowed(address):
                raise image_error(index, f"the URL's host resolves to {reason}, which is not allowed")
        return candidates[0]

    # ----------------------------------------------------------------------------------- fetching
    def fetch(self, url: str, index: int, deadline: float | None = None) -> bytes:
        """The body of ``url`` (following vetted redirects), at most ``max_bytes``; or InvalidImage.

        ``deadline`` (a ``time.monotonic()`` instant: the request's, for all its URLs) cuts the fetch
        short when it comes before this URL's own ``timeout_s``."""
        own = time.monotonic() + self.policy.timeout_s
        deadline = own if deadline is None else min(own, deadline)
        current = url
        for hop in range(self.policy.max_redirects + 1):
            status, location, body = self._get_once(current, index, deadline)
            if status in REDIRECTS:
                if hop == self.policy.max_redirects:
                    raise image_error(index, f"more than {self.policy.max_redirects} redirects")
                if not location:
                    raise image_error(index, f"HTTP {status} redirect without a Location")
                current = urljoin(current, location)
                continue
            if status != 200:
                raise image_error(index, f"the URL answered HTTP {status}")
            assert body is not None
            return body
        raise image_error(index, f"more than {self.policy.max_redirects} redirects")  # pragma: no cover

    def _get_once(self, url: str, index: int, deadline: float) -> tuple[int, str | None, bytes | None]:
        target = _Target.parse(url, index)
        address = self.vet(target.host, target.port, index, deadline)
        timeout = _left(deadline, index)
        conn = self._connection(target, address, timeout)
        # A hard deadline: socket timeouts bound each read, not a server trickling bytes; the watchdog
        # shuts the connection when the deadline passes, whatever the socket is doing.
        expired = threading.Event()
        watchdog = threading.Timer(timeout, _expire, args=(conn, expired))
        watchdog.daemon = True
        watchdog.start()
        try:
            result = self._exchange(conn, target.path, index, deadline)
            if expired.is_set():  # the watchdog's shutdown can look like a clean end of body
                raise image_error(index, self._too_slow)
            return result
        except (TimeoutError, ssl.SSLError, OSError, http.client.HTTPException, ValueError) as exc:
            if expired.is_set() or isinstance(exc, TimeoutError) or time.monotonic() >= deadline:
                raise image_error(index, self._too_slow) from exc
            if isinstance(exc, ssl.SSLError):
                raise image_error(index, f"TLS failed ({exc.reason or 'handshake'})") from exc
            raise image_error(index, f"fetching failed ({type(exc).__name__})") from exc
        finally:
            watchdog.cancel()
            conn.close()

    def _connection(self, target: _Target, address: str, timeout: float) -> http.client.HTTPConnection:
        if target.scheme == "https":
            return _PinnedHTTPSConnection(target.host, target.port, address, timeout, self._tls)
        return _PinnedHTTPConnection(target.host, target.port, address, timeout)

    def _exchange(
        self, conn: http.client.HTTPConnection, path: str, index: int, deadline: float
    ) -> tuple[int, str | None, bytes | None]:
        """One GET on ``conn``: (status, Location of a redirect, body of a 200)."""
        conn.request(
            "GET",
            path,
            headers={"User-Agent": USER_AGENT, "Accept": "image/*", "Accept-Encoding": "identity"},
        )
        _set_timeout(conn, deadline, index)
        response = conn.getresponse()
        if response.status in REDIRECTS:
            return response.status, response.getheader("Location"), None
        if response.status != 200:
            return response.status, None, None
        return 200, None, self._read_body(conn, response, index, deadline)

    @property
    def _too_slow(self) -> str:
        return f"fetching took longer than {self.policy.timeout_s:g} s"

    def _read_body(
        self,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        index: int,
        deadline: float,
    ) -> bytes:
        limit = self.policy.max_bytes
        declared = response.getheader("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise image_error(index, f"larger than {limit} bytes (Content-Length {int(declared)})")
        chunks: list[bytes] = []
        size = 0
        while True:
            _set_timeout(conn, deadline, index)
            chunk = response.read1(CHUNK) if hasattr(response, "read1") else response.read(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise image_error(index, f"larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _left(deadline: float, index: int) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise image_error(index, "fetching took longer than its time limit")
    return left


def _expire(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
    expired.set()
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _set_timeout(conn: http.client.HTTPConnection, deadline: float, index: int) -> None:
    if conn.sock is not None:
        conn.sock.settimeout(_left(deadline, index))
