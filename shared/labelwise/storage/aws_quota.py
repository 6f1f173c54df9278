"""Quota counters in the DynamoDB table, shared by every Lambda instance.

One item per key and minute: ``pk=RATE#<key id>``, ``sk=W#<window>``, attributes ``requests``,
``tokens`` and ``expires_at`` (the table's TTL attribute, so old windows disappear by themselves).
Admission is one conditional ``UpdateItem`` (``ADD requests 1`` only while both counters are under
their limits), so concurrent instances never admit more than the limit.

When the table errors or cannot be reached, admission **fails closed** by default: the request is
refused with :class:`~labelwise.errors.StoreUnavailable` (503 ``SERVICE_UNAVAILABLE``), so a broken
or missing table (or a missing IAM permission) never silently lifts every quota. With
``rate_limit_fail_open`` (``LABELWISE_RATE_LIMIT_FAIL_OPEN=true``) it admits and logs a warning
instead. Charging tokens after a request never fails it (the answer exists): a failure is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from labelwise.errors import StoreUnavailable
from labelwise.quota import WINDOW_SECONDS, RateLimiter
from labelwise.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

#: Counter items outlive their minute by this much before DynamoDB's TTL removes them.
TTL_SLACK_SECONDS = 300


class DynamoRateLimiter(RateLimiter):
    def __init__(
        self,
        table: str,
        requests_per_minute: int,
        tokens_per_minute: int,
        *,
        dynamodb: DynamoDBClient,
        clock: Callable[[], float] = time.time,
        fail_open: bool = False,
    ) -> None:
        super().__init__(requests_per_minute, tokens_per_minute, clock)
        self._table = table
        self._db = dynamodb
        self.fail_open = fail_open

    @classmethod
    def from_settings(cls, settings: Settings) -> DynamoRateLimiter:
        from labelwise.storage.aws import make_clients

        dynamodb, _ = make_clients(settings)
        return cls(
            settings.table_name,
            settings.rate_limit_requests_per_minute,
            settings.rate_limit_tokens_per_minute,
            dynamodb=dynamodb,
            fail_open=settings.rate_limit_fail_open,
        )

    def _store_failed(self, reason: str) -> tuple[int, int, bool]:
        """Admission when the counters cannot be read: admit (fail-open) or refuse with a 503."""
        if self.fail_open:
            logger.warning("quota store unavailable, admitting (fail-open): %s", reason)
            return 0, 0, True
        logger.warning("quota store unavailable, refusing (fail-closed): %s", reason)
        raise StoreUnavailable("The quota store is unavailable; the request was not admitted. Retry later.")

    def _key(self, key_id: str, window: int) -> dict[str, Any]:
        return {"pk": {"S": f"RATE#{key_id}"}, "sk": {"S": f"W#{window}"}}

    def _ttl(self, window: int) -> dict[str, str]:
        return {"N": str((window + 1) * WINDOW_SECONDS + TTL_SLACK_SECONDS)}

    @staticmethod
    def _counts(attributes: dict[str, Any]) -> tuple[int, int]:
        return int(attributes.get("requests", {}).get("N", 0)), int(attributes.get("tokens", {}).get("N", 0))

    def _try_admit(self, key_id: str, window: int) -> tuple[int, int, bool]:
        conditions, values = [], {":one": {"N": "1"}, ":ttl": self._ttl(window)}
        if self.requests_per_minute:
            conditions.append("(attribute_not_exists(requests) OR requests < :rpm)")
            values[":rpm"] = {"N": str(self.requests_per_minute)}
        if self.tokens_per_minute:
            conditions.append("(attribute_not_exists(tokens) OR tokens < :tpm)")
            values[":tpm"] = {"N": str(self.tokens_per_minute)}
        condition = {"ConditionExpression": " AND ".join(conditions)} if conditions else {}
        try:
            out = self._db.update_item(
                TableName=self._table,
                Key=self._key(key_id, window),
                UpdateExpression="ADD requests :one SET expires_at = :ttl",
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **condition,  # type: ignore[arg-type]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                requests, tokens = self._counts(exc.response.get("Item", {}))  # type: ignore[arg-type]
                return requests, tokens, False
            return self._store_failed(str(exc.response.get("Error", {}).get("Code")))
        except BotoCoreError as exc:
            return self._store_failed(type(exc).__name__)
        requests, tokens = self._counts(out.get("Attributes", {}))
        return requests, tokens, True

    def _add_tokens(self, key_id: str, window: int, tokens: int) -> tuple[int, int]:
        try:
            out = self._db.update_item(
                TableName=self._table,
                Key=self._key(key_id, window),
                UpdateExpression="ADD tokens :n SET expires_at = :ttl",
                ExpressionAttributeValues={":n": {"N": str(int(tokens))}, ":ttl": self._ttl(window)},
                ReturnValues="ALL_NEW",
            )
        except (ClientError, BotoCoreError) as exc:
            logger.warning("quota store unavailable, tokens not charged: %s", type(exc).__name__)
            return 0, 0
        return self._counts(out.get("Attributes", {}))
