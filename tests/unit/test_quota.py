"""Per-key quotas: fixed-window counters, token metering, 429 answers with Jina's headers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from labelwise.api.app import create_app
from labelwise.embedding.registry import ModelRegistry
from labelwise.quota import MemoryRateLimiter, QuotaExceeded
from labelwise.request_context import metering, record_tokens
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_requests_are_counted_per_key_and_window() -> None:
    # Given 3 requests per minute
    clock = Clock()
    limiter = MemoryRateLimiter(3, 0, clock)
    # When a key makes 3 requests
    states = [limiter.admit("k1") for _ in range(3)]
    # Then the remaining count goes down, and the 4th is refused with a retry hint
    assert [s.remaining_requests for s in states] == [2, 1, 0]
    assert states[0].remaining_tokens == -1
    with pytest.raises(QuotaExceeded) as info:
        limiter.admit("k1")
    assert info.value.headers["X-RateLimit-Remaining-Requests"] == "0"
    assert info.value.headers["Retry-After"] == "20"  # seconds to the next minute
    # And another key is unaffected, and the next minute starts afresh
    assert limiter.admit("k2").remaining_requests == 2
    clock.now += 60
    assert limiter.admit("k1").remaining_requests == 2


def test_tokens_are_charged_after_and_block_the_next_request() -> None:
    limiter = MemoryRateLimiter(0, 100, Clock())
    limiter.admit("k")
    assert limiter.charge("k", 60).remaining_tokens == 40
    limiter.admit("k")
    assert limiter.charge("k", 60).remaining_tokens == 0  # one request may overshoot
    with pytest.raises(QuotaExceeded, match="tokens") as refused:
        limiter.admit("k")
    # And the refusal names the token quota with Jina's code
    assert refused.value.code == "RATE_TOKEN_LIMIT_EXCEEDED"


def test_metering_counts_only_inside_the_block() -> None:
    record_tokens(5)  # outside: ignored
    with metering() as meter:
        record_tokens(3)
        record_tokens(4)
    record_tokens(100)
    assert meter[0] == 7


@pytest.fixture
def call(settings: Settings, api_event: Any, lambda_context: Any):
    services = Services(
        settings=settings,
        registry=ModelRegistry.from_embedders([HashingEmbedder()]),
        limiter=MemoryRateLimiter(2, 1000, Clock()),
    )
    key, _ = services.keys.create("t", "t")
    app = create_app(services)

    def invoke(body: Any) -> tuple[int, Any, dict[str, str]]:
        r = app.resolve(
            api_event("POST", "/v1/classify", body, headers={"authorization": f"Bearer {key}"}),
            lambda_context,
        )
        return r["statusCode"], json.loads(r["body"]), r["headers"]

    return invoke


def test_api_answers_429_with_jina_rate_limit_headers(call: Any) -> None:
    body = {"labels": ["a", "b"], "input": ["a b c"]}
    # Given two admitted requests, whose tokens are charged
    status, _, headers = call(body)
    assert status == 200
    assert headers["X-RateLimit-Remaining-Requests"] == "1"
    assert int(headers["X-RateLimit-Remaining-Tokens"]) == 1000 - (
        5 + 3 + 3
    )  # input + 2 labels (fake counts)
    assert call(body)[0] == 200
    # When a third comes within the minute
    status, out, headers = call(body)
    # Then it is refused in the envelope, with the headers
    assert status == 429 and out["code"] == "RATE_REQUEST_LIMIT_EXCEEDED"
    assert headers["X-RateLimit-Remaining-Requests"] == "0" and "Retry-After" in headers


def test_cohere_requests_get_429_in_cohere_shape(call: Any) -> None:
    body = {
        "inputs": ["x"],
        "examples": [{"text": "a", "label": "A"}] * 2 + [{"text": "b", "label": "B"}] * 2,
    }
    call(body), call(body)
    status, out, headers = call(body)
    assert status == 429 and set(out) == {"message"} and "X-RateLimit-Remaining-Requests" in headers


# -- what is charged: the work done, whatever the outcome (issue 12, item 4) ----------------------
@pytest.fixture
def metered(settings: Settings, api_event: Any, lambda_context: Any):
    """The app over the hashing text model and an image model in its space (mean colour), with a
    1,000,000-token quota; ``invoke`` returns status, body and the key's tokens charged so far."""
    from labelwise.classify.image_models import ImageModel, ImageModels
    from labelwise.images import ImageLoader
    from tests.support.fakes import fake_manifest

    class MeanColour:
        def zero_shot_vectors(self, images: Any) -> Any:
            import numpy as np

            out = np.zeros((len(images), 64), np.float32)
            for i, im in enumerate(images):
                out[i, :3] = im.reshape(-1, 3).mean(axis=0) / 255.0 + 0.01
            return out

        features = zero_shot_vectors

    def build(**overrides: Any) -> Any:
        configured = settings.model_copy(update=overrides)
        text = HashingEmbedder()
        manifest = fake_manifest("fake-image", aliases=()).replace(
            modality="image", family="efficientnet", feature_dimension=64, text_model="fake-model"
        )
        loader = ImageLoader.from_settings(configured)
        images = ImageModels(
            {"fake-image": (manifest, Path())},
            lambda m, p: ImageModel(manifest=m, router=MeanColour(), loader=loader),
        )
        limiter = MemoryRateLimiter(0, 1_000_000, Clock())
        services = Services(
            settings=configured, registry=ModelRegistry.from_embedders([text]), images=images,
            limiter=limiter,
        )  # fmt: skip
        key, record = services.keys.create("t", "t")
        app = create_app(services)

        def invoke(path: str, body: Any) -> tuple[int, Any, int]:
            r = app.resolve(
                api_event("POST", path, body, headers={"authorization": f"Bearer {key}"}), lambda_context
            )
            charged = 1_000_000 - limiter.charge(record.key_id, 0).remaining_tokens
            return r["statusCode"], json.loads(r["body"]), charged

        return invoke, text

    return build


def png_b64(size: tuple[int, int] = (8, 8)) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def test_a_request_that_fails_after_embedding_is_charged_what_it_embedded(metered: Any) -> None:
    # Given a request with 20 texts, then an input that is not an image (found only after the texts
    # were embedded)
    invoke, text = metered()
    texts = [f"text number {i} about something" for i in range(20)]
    body = {"labels": ["a", "b"], "input": [*texts, {"image": "bm90IGFuIGltYWdl"}]}

    # When it is classified
    status, out, charged = invoke("/v1/classify", body)

    # Then it fails with a 400, and the key is still charged the 20 texts' tokens
    assert status == 400 and out["code"] == "INPUT_INVALID_IMAGE"
    assert [call[0] for call in text.calls] == [tuple(texts)]
    assert charged == sum(text.count_tokens(texts, "input")) == 20 * 7


def test_zero_shot_images_are_charged_like_the_usage_says(metered: Any) -> None:
    # Given a zero-shot request with 3 images and a text
    invoke, _ = metered()
    body = {"labels": ["a", "b"], "input": [{"image": png_b64()}] * 3 + ["a text"]}

    # When it is classified
    status, out, charged = invoke("/v1/classify", body)

    # Then the key is charged what the usage reports, the images included (1 token each)
    assert status == 200, out
    assert charged == out["usage"]["total_tokens"] == 3 + 4 + (3 + 3)  # images, text, two labels


def truncated_png_b64() -> str:
    """A PNG whose header is valid (64x64) but whose pixel data is cut short: found only when decoded."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, format="PNG")
    data = buf.getvalue()
    return base64.b64encode(data[: len(data) // 2]).decode("ascii")


def test_few_shot_images_embedded_before_a_failure_are_charged(metered: Any) -> None:
    # Given 10 training images whose 10th is corrupt past its header (decoded after the first 8)
    invoke, _ = metered()
    good = [{"image": png_b64(), "label": "xy"[i % 2]} for i in range(9)]
    body = {"model": "fake-image", "input": [*good, {"image": truncated_png_b64(), "label": "x"}]}

    # When they are trained on
    status, out, charged = invoke("/v1/train", body)

    # Then the request fails, and the key is charged the images embedded before the failure
    assert status == 400 and out["code"] == "INPUT_INVALID_IMAGE", out
    assert charged == 8


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/classify", {"labels": ["a", "b"], "input": ["one two three four five"] * 20}),
        ("/v1/embeddings", {"input": ["one two three four five"] * 20}),
        (
            "/v1/train",
            {"input": [{"text": "one two three four five", "label": "ab"[i % 2]} for i in range(20)]},
        ),
        (
            "/v1/classify",
            {
                "inputs": ["one two three four five"] * 16,
                "examples": [{"text": "one two three", "label": "ab"[i % 2]} for i in range(4)],
            },
        ),
    ],
    ids=["zero-shot", "embeddings", "train", "cohere"],
)
def test_a_request_over_the_token_cap_is_refused_before_embedding(
    metered: Any, path: str, body: dict[str, Any]
) -> None:
    # Given a cap of 100 tokens a request, and a request of 20 five-word texts (7 tokens each)
    invoke, text = metered(max_request_tokens=100)

    # When it arrives
    status, out, charged = invoke(path, body)

    # Then it is refused with a 413 naming the limit and pointing to S3 uploads, before any embedding
    assert status == 413, out
    detail = out.get("detail") or out.get("message")
    assert "100 tokens" in detail and "max_request_tokens" in detail and "docs/uploads.md" in detail
    if "code" in out:
        assert out["code"] == "INPUT_TOKEN_LIMIT_EXCEEDED"
    assert text.calls == [] and charged == 0


def test_a_request_within_the_token_cap_is_served(metered: Any) -> None:
    # Given the same cap and a request of 10 tokens
    invoke, _ = metered(max_request_tokens=100)
    status, out, charged = invoke("/v1/classify", {"labels": ["a", "b"], "input": ["one two three"]})
    assert status == 200 and charged == out["usage"]["total_tokens"] == 5 + 3 + 3
