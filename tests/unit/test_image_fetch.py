"""Image URL fetching: the SSRF policy (real, unhooked) and the streaming, limits and redirects (against a
local server, reached through an injected resolver and the ``allowed_networks`` test hook, since the real
policy refuses loopback)."""

from __future__ import annotations

import datetime
import io
import ipaddress
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from labelwise.errors import InvalidImage
from labelwise.images import ImageLimits, ImageLoader
from labelwise.images.fetch import FetchPolicy, ImageFetcher, address_refusal

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)
TEST_HOST = "images.test"


def png(size: tuple[int, int] = (4, 3)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (0, 128, 255)).save(buf, format="PNG")
    return buf.getvalue()


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []  # (path, Host header)


class _Handler(BaseHTTPRequestHandler):
    """The test server: the routes the tests fetch; each request is recorded."""

    protocol_version = "HTTP/1.1"
    recorder: Recorder

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self, status: int, body: bytes, ctype: str = "image/png", length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.recorder.requests.append((self.path, self.headers.get("Host", "")))
        parts = urlsplit(self.path)
        if parts.path.startswith("/hops/"):
            self._redirect(301, self._hop(int(parts.path.rsplit("/", 1)[1])))
            return
        routes: dict[str, Callable[[], None]] = {
            "/img.png": lambda: self._body(200, png()),
            "/big": lambda: self._body(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 5000),
            "/big-unannounced": self._big_unannounced,
            "/slow": self._slow,
            "/html-as-png": lambda: self._body(200, b"<html>not an image</html>", ctype="image/png"),
            "/redirect": lambda: self._redirect_as_asked(parse_qs(parts.query)),
        }
        routes.get(parts.path, lambda: self._body(404, b"no"))()

    def _big_unannounced(self) -> None:
        self.close_connection = True
        self._body(200, b"\x89PNG\r\n\x1a\n" + b"\0" * 5000, length=False)

    def _slow(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        try:
            for _ in range(100):  # one byte every 50 ms: each read is quick, the whole is slow
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            return

    @staticmethod
    def _hop(left: int) -> str:
        return f"/hops/{left - 1}" if left > 0 else "/img.png"

    def _redirect_as_asked(self, query: dict[str, list[str]]) -> None:
        self._redirect(int(query.get("status", ["302"])[0]), query["to"][0])

    def _redirect(self, status: int, location: str) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


def make_handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"recorder": recorder})


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def server(recorder: Recorder) -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(recorder))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def local_resolver(host: str, port: int, timeout_s: float) -> list[str]:
    """Resolves the test name to the local server; anything else is unknown."""
    if host == TEST_HOST:
        return ["127.0.0.1"]
    raise OSError(f"unknown host {host}")


def hooked(**policy: Any) -> ImageFetcher:
    """A fetcher whose policy also accepts 127.0.0.1 (the test server), resolving TEST_HOST to it."""
    return ImageFetcher(FetchPolicy(allowed_networks=LOOPBACK, **policy), resolver=local_resolver)


# ------------------------------------------------------------------------------------ real policy
@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.10.0.5", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),
        ("2002:7f00:1::", "6to4"),
        ("64:ff9b::a00:1", "NAT64"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private|reserved"),
        ("100.64.0.1", "CGNAT"),
        ("192.0.2.1", "private"),  # TEST-NET-1 documentation range
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    # Given an address that is not on the public internet
    # When the policy vets it
    refusal = address_refusal(ipaddress.ip_address(address))

    # Then it is refused, for the right reason
    assert refusal is not None and re.search(reason, refusal)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/img.png",
        "http://localhost:{port}/img.png",
        "http://[::1]:{port}/img.png",
        "http://2130706433:{port}/img.png",  # 127.0.0.1 as a decimal number (getaddrinfo accepts it)
        "http://0x7f.1:{port}/img.png",
        "http://10.0.0.1/img.png",
        "http://192.168.0.1/img.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:{port}/img.png",
        "http://[::ffff:7f00:1]:{port}/img.png",
        "http://0.0.0.0:{port}/img.png",
    ],
)
def test_the_real_policy_refuses_the_local_server_and_internal_addresses(
    server: int, recorder: Recorder, url: str
) -> None:
    # Given the production policy (no test hook) and the system resolver
    fetcher = ImageFetcher(FetchPolicy(timeout_s=2))
    before = len(recorder.requests)

    # When an internal URL is fetched
    with pytest.raises(InvalidImage) as info:
        fetcher.fetch(url.format(port=server), 5)

    # Then it is refused before any connection, naming the input and the reason
    assert "`input[5]`" in info.value.detail
    assert "not allowed" in info.value.detail or "cannot resolve" in info.value.detail
    assert len(recorder.requests) == before


def test_a_name_resolving_to_any_private_address_is_refused() -> None:
    # Given a name with one public and one private address (a DNS answer an attacker controls)
    def mixed(host: str, port: int, timeout_s: float) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    fetcher = ImageFetcher(FetchPolicy(), resolver=mixed)

    # Then the URL is refused: every address must be public
    with pytest.raises(InvalidImage, match="private address"):
        fetcher.fetch("https://cdn.example.com/a.png", 0)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/a.png", r"only http\(s\)"),
        ("file:///etc/passwd", r"only http\(s\)"),
        ("https://user:secret@example.com/a.png", "credentials"),
        ("http:///a.png", "no host"),
        ("http://example.com:99999/a.png", "malformed"),
    ],
)
def test_malformed_or_non_http_urls_are_refused(url: str, reason: str) -> None:
    fetcher = ImageFetcher(FetchPolicy(timeout_s=1), resolver=local_resolver)
    with pytest.raises(InvalidImage, match=reason):
        fetcher.fetch(url, 0)


def test_a_redirect_to_a_private_address_is_refused(server: int, recorder: Recorder) -> None:
    # Given a (hooked) server that redirects to internal addresses the hook does not cover
    fetcher = hooked(timeout_s=2)
    for target in (
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://10.0.0.5/",
        "http://[::ffff:10.0.0.5]/",
        f"http://127.0.0.2:{server}/img.png",
    ):
        # When the redirecting URL is fetched
        with pytest.raises(InvalidImage) as info:
            fetcher.fetch(f"http://{TEST_HOST}:{server}/redirect?to={target}", 1)

        # Then the redirect target is vetted and refused
        assert "not allowed" in info.value.detail, target


def test_a_redirect_to_a_non_http_scheme_is_refused(server: int) -> None:
    with pytest.raises(InvalidImage, match="only http"):
        hooked(timeout_s=2).fetch(f"http://{TEST_HOST}:{server}/redirect?to=file:///etc/passwd", 0)


# ----------------------------------------------------------------------- streaming (hooked policy)
def test_fetch_pins_the_vetted_address_and_sends_the_original_host(server: int, recorder: Recorder) -> None:
    # Given a resolver that must be asked exactly once per hop
    calls: list[str] = []

    def counting(host: str, port: int, timeout_s: float) -> list[str]:
        calls.append(host)
        return local_resolver(host, port, timeout_s)

    fetcher = ImageFetcher(FetchPolicy(allowed_networks=LOOPBACK), resolver=counting)

    # When an image is fetched by name
    body = fetcher.fetch(f"http://{TEST_HOST}:{server}/img.png", 0)

    # Then the bytes arrive, the name was resolved once, and the server saw the original Host
    assert body == png()
    assert calls == [TEST_HOST]
    assert recorder.requests[-1] == ("/img.png", f"{TEST_HOST}:{server}")


def test_up_to_three_redirects_are_followed_and_a_fourth_is_refused(server: int) -> None:
    fetcher = hooked(max_redirects=3)

    # /hops/2 -> /hops/1 -> /hops/0 -> /img.png: three redirects
    assert fetcher.fetch(f"http://{TEST_HOST}:{server}/hops/2", 0) == png()

    # /hops/3: four redirects
    with pytest.raises(InvalidImage, match="more than 3 redirects"):
        fetcher.fetch(f"http://{TEST_HOST}:{server}/hops/3", 0)


@pytest.mark.parametrize("path", ["/big", "/big-unannounced"])
def test_an_oversize_body_is_refused(server: int, path: str) -> None:
    # Given a 4 KB limit and a 5 KB body (with and without Content-Length)
    fetcher = hooked(max_bytes=4096)

    # Then it is refused while streaming
    with pytest.raises(InvalidImage, match="larger than 4096 bytes"):
        fetcher.fetch(f"http://{TEST_HOST}:{server}{path}", 0)


def test_a_slow_server_hits_the_total_deadline(server: int) -> None:
    # Given a server trickling one byte every 50 ms (each read is fast) and a 0.4 s deadline
    fetcher = hooked(timeout_s=0.4)
    started = time.monotonic()

    # When the body is fetched
    with pytest.raises(InvalidImage, match=r"longer than 0\.4 s"):
        fetcher.fetch(f"http://{TEST_HOST}:{server}/slow", 2)

    # Then the deadline held for the whole body, not per read
    assert time.monotonic() - started < 4  # the whole trickled body takes 5 s; margin for a loaded CI


def test_http_errors_are_reported(server: int) -> None:
    with pytest.raises(InvalidImage, match="HTTP 404"):
        hooked().fetch(f"http://{TEST_HOST}:{server}/missing.png", 0)


def test_non_image_bytes_with_an_image_content_type_are_refused(server: int) -> None:
    # Given a server answering HTML labelled image/png
    loader = ImageLoader(ImageLimits(), hooked())

    # When the URL is loaded as an image
    # Then the sniffed content decides
    with pytest.raises(InvalidImage, match=r"`input\[7\]`.*not a PNG, JPEG"):
        loader.load(f"http://{TEST_HOST}:{server}/html-as-png", 7)


def test_loader_fetches_and_decodes_urls_in_order(server: int) -> None:
    loader = ImageLoader(ImageLimits(), hooked())
    images = loader.load_all([f"http://{TEST_HOST}:{server}/img.png"] * 3)
    assert [im.shape for im in images] == [(3, 4, 3)] * 3


# ------------------------------------------------------------------------------------------- https
def self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_https_sends_sni_and_verifies_the_certificate_for_the_original_name(
    tmp_path: Path, recorder: Recorder
) -> None:
    pytest.importorskip("cryptography")
    # Given an HTTPS server on 127.0.0.1 with a certificate for images.test only
    cert, key = self_signed(tmp_path, TEST_HOST)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(recorder))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    port = httpd.server_address[1]
    client_ctx = ssl.create_default_context(cafile=str(cert))
    try:
        # When the image is fetched by name through the pinned address
        fetcher = ImageFetcher(
            FetchPolicy(allowed_networks=LOOPBACK, timeout_s=3),
            resolver=lambda host, p, t: ["127.0.0.1"],
            tls_context=client_ctx,
        )
        body = fetcher.fetch(f"https://{TEST_HOST}:{port}/img.png", 0)

        # Then TLS verified images.test (not the IP), and the body arrived
        assert body == png()

        # And a name the certificate does not cover fails verification
        with pytest.raises(InvalidImage, match="TLS failed"):
            fetcher.fetch(f"https://other.test:{port}/img.png", 0)
    finally:
        httpd.shutdown()
        httpd.server_close()
