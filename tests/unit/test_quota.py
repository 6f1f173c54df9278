"""Per-key quotas: fixed-window counters, token metering, 429 answers with Jina's headers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labelwise.api.app import create_app
from labelwise.embedding.registry import ModelRegistry
from labelwise.quota import MemoryRateLimiter, QuotaExceeded
from labelwise.request_context import metering, record_tokens
from labelwise.runtime import Services
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
