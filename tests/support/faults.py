"""Inject AWS faults into real botocore clients talking to moto's server.

A :class:`FaultInjector` registers on a client's ``before-send`` event, which botocore emits once per
HTTP *attempt* (inside its retry loop). For an attempt that matches a :class:`Rule` it answers
instead of moto, with what the AWS service answers under that fault:

* ``throttle``: DynamoDB 400 ``ThrottlingException``; S3 503 ``SlowDown``; SQS 400 ``ThrottlingException``
* ``capacity``: DynamoDB 400 ``ProvisionedThroughputExceededException``
* ``error``: 500 ``InternalServerError`` (DynamoDB) / ``InternalError`` (S3, SQS)
* ``timeout``: the read timed out before any answer (``ReadTimeoutError``, as urllib3 raises it)
* ``lost``: the request *reaches* moto and is applied, then the answer is lost (``ReadTimeoutError``):
  the ambiguous outcome of a real timeout

so botocore's own retry logic (standard mode, ``labelwise.storage.aws.CLIENT_CONFIG``) and the
adapters' error wrapping run exactly as against AWS. Attempts that match no rule go to moto.
:func:`no_backoff_sleep` records botocore's backoff delays instead of sleeping them.
"""

from __future__ import annotations

import contextlib
import json
import threading
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError

FAULT_KINDS = ("throttle", "capacity", "error", "timeout", "lost")


@dataclass
class Rule:
    """Fault ``kind`` on ``service`` ``operation`` attempts: skip the first ``skip`` matching attempts,
    then fault ``times`` of them (``None``: every one after that, i.e. the store stays down)."""

    service: str  # botocore service id: "dynamodb", "s3", "sqs"
    operation: str  # botocore operation name: "UpdateItem", "PutObject", ...
    kind: str
    times: int | None = None
    skip: int = 0
    seen: int = 0
    injected: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")

    def take(self, service: str, operation: str) -> bool:
        if (service, operation) != (self.service, self.operation):
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        if self.times is not None and self.injected >= self.times:
            return False
        self.injected += 1
        return True


class _Raw:
    """The ``raw`` of an :class:`AWSResponse`: what botocore reads the body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _json_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message})
    return status, {"Content-Type": "application/x-amz-json-1.0", "x-amzn-ErrorType": code}, body.encode()


def _xml_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}</Message>"
    body += "</Error>"
    return status, {"Content-Type": "application/xml"}, body.encode()


def _sqs_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message})
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": f"{code};Sender"}
    return status, headers, body.encode()


def fault_response(service: str, kind: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body the service answers with under fault ``kind``."""
    if service == "s3":
        if kind in ("throttle", "capacity"):
            return _xml_error(503, "SlowDown", "Please reduce your request rate.")
        return _xml_error(500, "InternalError", "We encountered an internal error. Please try again.")
    if service == "sqs":
        if kind in ("throttle", "capacity"):
            return _sqs_error(400, "ThrottlingException", "Rate exceeded")
        return _sqs_error(500, "InternalError", "Internal error")
    if kind == "throttle":
        return _json_error(400, "ThrottlingException", "Rate of requests exceeds the allowed throughput.")
    if kind == "capacity":
        return _json_error(
            400,
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded.",
        )
    return _json_error(500, "InternalServerError", "Internal server error")


@dataclass
class FaultInjector:
    """Rules plus counts: ``attempts[(service, op)]`` (every HTTP attempt the clients made),
    ``injected[(service, op, kind)]`` (faults answered)."""

    rules: list[Rule] = field(default_factory=list)
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    injected: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, *clients: Any) -> None:
        for client in clients:
            client.meta.events.register("before-send", self._before_send)

    def add(self, service: str, operation: str, kind: str, times: int | None = None, skip: int = 0) -> Rule:
        rule = Rule(service, operation, kind, times, skip)
        with self._lock:
            self.rules.append(rule)
        return rule

    @contextlib.contextmanager
    def fault(
        self, service: str, operation: str, kind: str, times: int | None = None, skip: int = 0
    ) -> Iterator[Rule]:
        """The rule applies inside the block only."""
        rule = self.add(service, operation, kind, times, skip)
        try:
            yield rule
        finally:
            with self._lock:
                self.rules.remove(rule)

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _before_send(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        _, service, operation = event_name.split(".", 2)
        with self._lock:
            self.attempts[(service, operation)] += 1
            rule = next((r for r in self.rules if r.take(service, operation)), None)
            if rule is not None:
                self.injected[(service, operation, rule.kind)] += 1
        if rule is None:
            return None
        if rule.kind == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        if rule.kind == "lost":
            _forward(request)
            raise ReadTimeoutError(endpoint_url=request.url)
        status, headers, body = fault_response(service, rule.kind)
        return AWSResponse(request.url, status, headers, _Raw(body))


def _forward(request: Any) -> None:
    """Send the signed request to moto and drop the answer (a write that lands, an answer that is lost)."""
    body = request.body
    if body is not None and not isinstance(body, bytes):
        body = body.read() if hasattr(body, "read") else str(body).encode()
    forwarded = urllib.request.Request(
        request.url, data=body, method=request.method, headers=dict(request.headers.items())
    )
    with contextlib.suppress(Exception), urllib.request.urlopen(forwarded, timeout=10) as answer:
        answer.read()


@contextlib.contextmanager
def no_backoff_sleep(delays: list[float]) -> Iterator[None]:
    """Record botocore's retry backoff delays (``botocore.endpoint`` sleeps them) instead of sleeping."""
    import botocore.endpoint

    real_time = botocore.endpoint.time

    class _Time:
        def __getattr__(self, name: str) -> Any:
            return getattr(real_time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            delays.append(seconds)

    botocore.endpoint.time = _Time()  # type: ignore[assignment]
    try:
        yield
    finally:
        botocore.endpoint.time = real_time
