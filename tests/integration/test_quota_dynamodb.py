"""The DynamoDB quota counters against moto's server: same behaviour as in memory, and no
over-admission under concurrent instances."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from labelwise.quota import MemoryRateLimiter, QuotaExceeded, RateLimiter
from labelwise.storage.aws_quota import DynamoRateLimiter
from tests.support.moto_server import aws_clients, create_table_and_bucket, moto_server

TABLE = "quota-test"


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    with moto_server() as endpoint:
        db, s3 = aws_clients(endpoint)
        create_table_and_bucket(db, s3, TABLE, "quota-test-bucket")
        yield db


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


def test_store_down_fails_open() -> None:
    import boto3
    from botocore.config import Config

    db = boto3.client(
        "dynamodb", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}, connect_timeout=0.5, read_timeout=0.5),
    )  # fmt: skip
    limiter = DynamoRateLimiter(TABLE, 1, 0, dynamodb=db)
    limiter.admit("k")
    limiter.admit("k")  # would be refused if counted: the limiter admits while its store is down
