"""The DynamoDB quota counters against moto's server: same behaviour as in memory, and no
over-admission under concurrent instances."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from labelwise.errors import StoreUnavailable
from labelwise.quota import MemoryRateLimiter, QuotaExceeded, RateLimiter
from labelwise.settings import Settings
from labelwise.storage.aws_quota import DynamoRateLimiter
from tests.support.moto_server import FAKE_AWS_ENV, aws_clients, create_table_and_bucket, moto_server

TABLE = "quota-test"


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def dynamodb(moto_endpoint: str) -> Any:
    db, s3 = aws_clients(moto_endpoint)
    create_table_and_bucket(db, s3, TABLE, "quota-test-bucket")
    return db


@pytest.fixture(params=["memory", "dynamodb"])
def make_limiter(request: pytest.FixtureRequest, dynamodb: Any):
    def make(rpm: int, tpm: int, clock: Clock) -> RateLimiter:
        if request.param == "memory":
            return MemoryRateLimiter(rpm, tpm, clock)
        return DynamoRateLimiter(TABLE, rpm, tpm, dynamodb=dynamodb, clock=clock)

    return make


def test_request_and_token_limits(make_limiter: Any) -> None:
    # Given 2 requests and 50 tokens per minute
    clock = Clock()
    limiter = make_limiter(2, 50, clock)
    key = f"key-{id(limiter)}"
    # When a key uses them up
    assert limiter.admit(key).remaining_requests == 1
    assert limiter.charge(key, 30).remaining_tokens == 20
    assert limiter.admit(key).remaining_requests == 0
    # Then the next request is refused, and the next minute is fresh
    with pytest.raises(QuotaExceeded) as info:
        limiter.admit(key)
    assert info.value.state.remaining_requests == 0 and info.value.state.remaining_tokens == 20
    clock.now += 60
    assert limiter.admit(key).remaining_requests == 1


def test_concurrent_admission_never_exceeds_the_limit(make_limiter: Any) -> None:
    # Given 10 requests per minute and 16 concurrent callers making 40 requests
    limiter = make_limiter(10, 0, Clock())
    key = f"burst-{id(limiter)}"

    def attempt(_: int) -> bool:
        try:
            limiter.admit(key)
        except QuotaExceeded:
            return False
        return True

    with ThreadPoolExecutor(16) as pool:
        admitted = sum(pool.map(attempt, range(40)))
    # Then exactly 10 were admitted
    assert admitted == 10


def test_items_expire_through_the_table_ttl(dynamodb: Any) -> None:
    limiter = DynamoRateLimiter(TABLE, 5, 0, dynamodb=dynamodb, clock=Clock())
    limiter.admit("ttl-key")
    item = dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": "RATE#ttl-key"}, "sk": {"S": f"W#{int(Clock.now // 60)}"}}
    )
    assert int(item["Item"]["expires_at"]["N"]) > Clock.now


def _unreachable_dynamodb() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=0.5, read_timeout=0.5),
    )  # fmt: skip


def test_unreachable_store_fails_closed_by_default() -> None:
    # Given a limiter whose DynamoDB cannot be reached, with the default settings
    limiter = DynamoRateLimiter(TABLE, 1, 0, dynamodb=_unreachable_dynamodb())
    # When a request asks to be admitted
    # Then it is refused as 503 SERVICE_UNAVAILABLE, not silently let through without a quota
    with pytest.raises(StoreUnavailable):
        limiter.admit("k")


def test_missing_table_fails_closed_by_default(dynamodb: Any) -> None:
    # Given a limiter on a table that does not exist (moto answers ResourceNotFoundException)
    limiter = DynamoRateLimiter("no-such-table", 5, 0, dynamodb=dynamodb)
    # When a request asks to be admitted
    # Then it is refused (503), every time
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            limiter.admit("k")


def test_store_errors_fail_open_when_configured(
    dynamodb: Any, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    # Given LABELWISE_RATE_LIMIT_FAIL_OPEN=true and a table that does not exist
    for k, v in FAKE_AWS_ENV.items():
        monkeypatch.setenv(k, v)
    configured = Settings.from_environ(
        {
            "LABELWISE_DATA_DIR": str(settings.data_dir),
            "LABELWISE_CACHE_DIR": str(settings.cache_dir),
            "LABELWISE_TABLE_NAME": "no-such-table",
            "LABELWISE_AWS_ENDPOINT_URL": moto_endpoint,
            "LABELWISE_RATE_LIMIT_REQUESTS_PER_MINUTE": "1",
            "LABELWISE_RATE_LIMIT_FAIL_OPEN": "true",
        }
    )
    limiter = DynamoRateLimiter.from_settings(configured)
    # When requests ask to be admitted, past the limit of 1
    # Then each is admitted (the operator chose availability over the quota), and so with no store
    limiter.admit("k")
    limiter.admit("k")
    DynamoRateLimiter(TABLE, 1, 0, dynamodb=_unreachable_dynamodb(), fail_open=True).admit("k")
