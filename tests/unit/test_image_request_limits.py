"""Per-request bounds on image work (issue 12, item 3): a pixel budget read from the headers before
any decoding, decoding in bounded chunks, and one deadline for all of a request's URL fetches."""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from labelwise.api.app import create_app
from labelwise.classify.image_models import ImageModel, ImageModels
from labelwise.embedding.registry import ModelRegistry
from labelwise.images import ImageLoader
from labelwise.images.fetch import FetchPolicy, ImageFetcher
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder, fake_manifest

TEST_HOST = "images.test"
LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


def png_b64(size: tuple[int, int], color: tuple[int, int, int] = (200, 30, 60)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


class RecordingRouter:
    """An image 'model' (mean colour, padded to the text space) that records each call's batch and
    whether the images of earlier calls are still alive when the next call arrives."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.batches: list[int] = []
        self.alive_from_earlier_calls: list[int] = []
        self._refs: list[weakref.ref[np.ndarray]] = []

    def _vectors(self, images: Sequence[np.ndarray]) -> np.ndarray:
        self.alive_from_earlier_calls.append(sum(ref() is not None for ref in self._refs))
        self._refs.extend(weakref.ref(im) for im in images)
        self.batches.append(len(images))
        out = np.zeros((len(images), self.dimension), np.float32)
        for i, im in enumerate(images):
            out[i, :3] = im.reshape(-1, 3).mean(axis=0) / 255.0
            out[i, 3] = 1.0
        return out

    def zero_shot_vectors(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self._vectors(images)

    def features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self._vectors(images)


def local_resolver(host: str, port: int, timeout_s: float) -> list[str]:
    if host == TEST_HOST:
        return ["127.0.0.1"]
    raise OSError(f"unknown host {host}")


@pytest.fixture
def api(settings: Settings, api_event: Any, lambda_context: Any) -> Any:
    """The app over the hashing text model and a recording image model sharing its space; the
    loader is the real one built from Settings, its fetcher hooked to reach a loopback server."""

    def build(**overrides: Any) -> Any:
        configured = settings.model_copy(update=overrides)
        text = HashingEmbedder()
        router = RecordingRouter(text.manifest.dimension)
        loader = ImageLoader.from_settings(configured)
        loader.fetcher = ImageFetcher(
            FetchPolicy(
                max_bytes=configured.image_max_bytes,
                timeout_s=configured.image_fetch_timeout_s,
                allowed_networks=LOOPBACK,
            ),
            resolver=local_resolver,
        )
        manifest = fake_manifest("fake-image", aliases=()).replace(
            modality="image", family="efficientnet", feature_dimension=text.manifest.dimension,
            text_model="fake-model",
        )  # fmt: skip
        images = ImageModels(
            {"fake-image": (manifest, Path())},
            lambda m, p: ImageModel(manifest=m, router=router, loader=loader),
        )
        services = Services(settings=configured, registry=ModelRegistry.from_embedders([text]), images=images)
        key, _ = services.keys.create("t", "t")
        app = create_app(services)

        def call(body: Any) -> tuple[int, Any]:
            r = app.resolve(
                api_event("POST", "/v1/classify", body, headers={"authorization": f"Bearer {key}"}),
                lambda_context,
            )
            return r["statusCode"], json.loads(r["body"])

        return call, router

    return build


def test_images_over_the_request_pixel_budget_are_refused_before_decoding(api: Any) -> None:
    # Given the default budget (64 MP a request) and eight 16 MP PNGs (128 MP; a small body)
    call, router = api()
    big = png_b64((4000, 4000))
    body = {"labels": ["red", "blue"], "input": [{"image": big} for _ in range(8)]}
    assert len(json.dumps(body)) < 1024 * 1024

    # When they are classified
    started = time.monotonic()
    status, out = call(body)

    # Then the request is refused with a 413 in the envelope naming the limit, and no image reached
    # the model (decoding eight 16 MP images took seconds and ~800 MB before the budget)
    assert status == 413, out
    assert out["code"] == "INPUT_PIXEL_LIMIT_EXCEEDED"
    assert "64 megapixels" in out["detail"] and "max_request_pixels" in out["detail"]
    assert router.batches == []
    assert time.monotonic() - started < 5


def test_a_request_within_the_budget_is_decoded_and_embedded_in_bounded_chunks(api: Any) -> None:
    # Given 20 small images (well inside the budget)
    call, router = api()
    body = {
        "labels": ["red", "blue"],
        "input": [{"image": png_b64((64, 48), (i * 10, 0, 255 - i * 10))} for i in range(20)],
    }

    # When they are classified
    status, out = call(body)

    # Then they are answered in order, having reached the model at most 8 at a time, and each
    # chunk's decoded pixels were released before the next chunk was decoded
    assert status == 200, out
    assert len(out["data"]) == 20 and [row["index"] for row in out["data"]] == list(range(20))
    assert router.batches == [8, 8, 4]
    assert router.alive_from_earlier_calls == [0, 0, 0]


def test_chunks_are_also_bounded_by_pixels(api: Any) -> None:
    # Given six 6 MP images (36 MP: inside the 64 MP request budget)
    call, router = api()
    body = {"labels": ["red", "blue"], "input": [{"image": png_b64((3000, 2000))} for _ in range(6)]}

    # When they are classified
    status, out = call(body)

    # Then no chunk held more than 16 MP of decoded pixels (two of these images)
    assert status == 200, out
    assert router.batches == [2, 2, 2]
    assert router.alive_from_earlier_calls == [0, 0, 0]


class SlowHandler(BaseHTTPRequestHandler):
    """Answers every GET with a small PNG after ``delay_s`` (a slow image host)."""

    protocol_version = "HTTP/1.1"
    delay_s = 1.0
    body = base64.b64decode(png_b64((8, 8)))

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        time.sleep(self.delay_s)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        except OSError:
            return


@pytest.fixture
def slow_server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield int(httpd.server_address[1])
    httpd.shutdown()
    httpd.server_close()


def test_url_fetches_share_one_request_deadline(api: Any, slow_server: int) -> None:
    # Given a host answering each URL after 1 s (each fetch well within its own 10 s limit), 16 URLs
    # (4 fetched at a time: 4 s in all) and a request-wide fetch deadline of 1.5 s
    call, router = api(image_fetch_deadline_s=1.5)
    urls = [f"http://{TEST_HOST}:{slow_server}/{i}.png" for i in range(16)]
    body = {"labels": ["red", "blue"], "input": [{"image": url} for url in urls]}

    # When they are classified
    started = time.monotonic()
    status, out = call(body)
    elapsed = time.monotonic() - started

    # Then the remaining fetches are abandoned at the deadline, and the request answers 504 in the
    # envelope, naming the limit
    assert status == 504, (status, out, elapsed)
    assert out["code"] == "SERVICE_TIMEOUT"
    assert "1.5 s" in out["detail"] and "image_fetch_deadline_s" in out["detail"]
    assert elapsed < 3.0
    assert router.batches == []


def test_url_fetches_within_the_deadline_are_served(api: Any, slow_server: int) -> None:
    # Given the same slow host, 4 URLs (one round of 4 fetches: ~1 s) and the default 15 s deadline
    call, router = api()
    body = {
        "labels": ["red", "blue"],
        "input": [{"image": f"http://{TEST_HOST}:{slow_server}/{i}.png"} for i in range(4)],
    }

    # Then they are fetched, decoded and answered
    status, out = call(body)
    assert status == 200, out
    assert router.batches == [4]


def test_image_chunks_stop_at_the_request_deadline(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a request budget of 50 ms and an image model taking 100 ms per chunk
    call, router = api(request_budget_s=0.05)
    recorded = router._vectors

    def slow(images: Sequence[np.ndarray]) -> np.ndarray:
        time.sleep(0.1)
        return recorded(images)

    monkeypatch.setattr(router, "_vectors", slow)
    # When 20 small images (3 chunks) are classified
    body = {"labels": ["red", "blue"], "input": [{"image": png_b64((64, 48))} for _ in range(20)]}
    status, out = call(body)
    # Then the request stops after the first chunk with 504 SERVICE_TIMEOUT pointing to uploads
    assert status == 504, out
    assert out["code"] == "SERVICE_TIMEOUT" and "uploads" in out["detail"]
    assert router.batches == [8]
