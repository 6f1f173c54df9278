"""S3 and DynamoDB throttle, time out and fail at each step of train, classify and upload handling.

The real adapters (labelwise.storage.aws, labelwise.uploads.aws) and the real API app talk to moto's
server; :mod:`tests.support.faults` answers chosen attempts with the fault instead (botocore's
``before-send``), so botocore's standard-mode retries and the adapters' error mapping run as in AWS.
Expected: throttling and timeouts are retried with backoff and succeed; a store that stays down is a
503 ``SERVICE_UNAVAILABLE`` in Jina's envelope (never a 500); a failure at any step of a train call
leaves the previous version served and no half-written version visible; upload handling fails the
message (redelivered) and never writes partial results; no example text is ever logged.

The per-kind counts of injected faults and outcomes are printed at the end of the module
(``pytest -s tests/integration/test_faults.py``) and recorded in docs/reliability.md.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from botocore.config import Config

from labelwise.api.app import create_app
from labelwise.classify import fewshot
from labelwise.embedding.registry import ModelRegistry
from labelwise.services import Services
from labelwise.settings import Settings
from labelwise.storage.aws import CLIENT_CONFIG, AwsClassifierStore, AwsKeyStore
from labelwise.storage.aws_quota import DynamoRateLimiter
from labelwise.uploads.aws import STREAM_CONFIG, S3ObjectStore, SqsContinuationQueue
from labelwise.uploads.jobs import UploadJobs, unlimited
from tests.support.fakes import HashingEmbedder
from tests.support.faults import FaultInjector, no_backoff_sleep
from tests.support.moto_server import moto_server
from tests.support.template import create_resources

#: Example texts carry this marker; it must never appear in a log line.
SECRET = "zq-example-secret"
TRAIN_V1 = [
    {"text": f"{SECRET} invoice charged twice refund", "label": "billing"},
    {"text": f"{SECRET} parcel tracking delivery late", "label": "shipping"},
]
TRAIN_V2 = [{"text": f"{SECRET} password login locked account", "label": "account"}]
#: Faults injected and outcomes observed over the module, for the summary.
TALLY: Counter[str] = Counter()
OUTCOMES: Counter[str] = Counter()


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, Any]]:
    with moto_server() as endpoint:
        session = boto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        created = create_resources(session, endpoint_url=endpoint)
        yield {"endpoint": endpoint, "session": session, "created": created}
    print_summary()


def print_summary() -> None:
    lines = ["", "fault injection summary (faults injected by service/operation/kind):"]
    lines += [f"  {key:<45} {n}" for key, n in sorted(TALLY.items())]
    lines.append("outcomes:")
    lines += [f"  {key:<45} {n}" for key, n in sorted(OUTCOMES.items())]
    lines.append(f"total faults injected: {sum(TALLY.values())}")
    print("\n".join(lines))


@dataclass
class Stack:
    app: Any
    store: AwsClassifierStore
    faults: FaultInjector
    delays: list[float]
    key: str
    s3: Any
    bucket: str
    services: Services
    app_settings: Settings
    ddb: Any

    def call(self, event: dict[str, Any], context: Any) -> tuple[int, dict[str, Any]]:
        response = self.app.resolve(event, context)
        return response["statusCode"], json.loads(response["body"])

    def blobs(self, classifier_id: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"classifiers/{classifier_id}/")
        return sorted(o["Key"] for o in listed.get("Contents", []))


def clients(aws: dict[str, Any], faults: FaultInjector) -> tuple[Any, Any, Any]:
    session, endpoint = aws["session"], aws["endpoint"]
    path_style = Config(s3={"addressing_style": "path"})
    ddb = session.client("dynamodb", endpoint_url=endpoint, config=CLIENT_CONFIG)
    s3 = session.client("s3", endpoint_url=endpoint, config=CLIENT_CONFIG.merge(path_style))
    sqs = session.client("sqs", endpoint_url=endpoint, config=CLIENT_CONFIG)
    faults.install(ddb, s3, sqs)
    return ddb, s3, sqs


@pytest.fixture
def stack(aws: dict[str, Any], settings: Settings, caplog: pytest.LogCaptureFixture) -> Iterator[Stack]:
    """The API app over the AWS adapters (fresh clients: a fresh retry quota), faults installed."""
    caplog.set_level(logging.DEBUG)
    faults = FaultInjector()
    ddb, s3, _ = clients(aws, faults)
    created = aws["created"]
    store = AwsClassifierStore(created.table_name, created.bucket_name, dynamodb=ddb, s3=s3)
    keys = AwsKeyStore(created.table_name, dynamodb=ddb)
    key, _ = keys.create("tenant-faults", "faults")
    services = Services(
        settings=settings,
        registry=ModelRegistry.from_embedders([HashingEmbedder()]),
        store=store,
        keys=keys,
    )
    fewshot.WEIGHTS_CACHE.clear()
    delays: list[float] = []
    with no_backoff_sleep(delays):
        yield Stack(
            create_app(services), store, faults, delays, key, s3, created.bucket_name, services, settings, ddb
        )
    fewshot.WEIGHTS_CACHE.clear()
    for (service, operation, kind), n in faults.injected.items():
        TALLY[f"{service} {operation} {kind}"] += n
    # No log record, at any level, carries example text
    leaked = [r.getMessage() for r in caplog.records if SECRET in r.getMessage() or SECRET in str(r.__dict__)]
    assert not leaked, leaked


def event(api_event: Any, stack: Stack, method: str, path: str, body: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = api_event(method, path, body, headers={"authorization": f"Bearer {stack.key}"})
    return result


def train(
    stack: Stack, api_event: Any, ctx: Any, examples: list[dict[str, str]], cid: str | None = None
) -> Any:
    body: dict[str, Any] = {"input": examples, "num_iters": 5}
    if cid:
        body["classifier_id"] = cid
    return stack.call(event(api_event, stack, "POST", "/v1/train", body), ctx)


def assert_consistent(stack: Stack, cid: str, version: int) -> None:
    """The classifier is at ``version``, its weights load, and the previous version's do too."""
    meta = stack.store.get_meta(cid)
    assert meta is not None and meta.version == version
    assert stack.store.load_weights(cid, version)
    if version > 1:
        assert stack.store.load_weights(cid, version - 1)


# -- retries ----------------------------------------------------------------------------------------

RETRIED = [
    ("dynamodb", "GetItem", "throttle"),
    ("dynamodb", "GetItem", "timeout"),
    ("dynamodb", "UpdateItem", "capacity"),
    ("dynamodb", "UpdateItem", "error"),
    ("s3", "PutObject", "throttle"),
    ("s3", "PutObject", "timeout"),
    ("s3", "GetObject", "error"),
    ("s3", "GetObject", "throttle"),
]


@pytest.mark.parametrize(("service", "operation", "kind"), RETRIED, ids=["-".join(r) for r in RETRIED])
def test_transient_faults_are_retried_with_backoff(
    stack: Stack, api_event: Any, lambda_context: Any, service: str, operation: str, kind: str
) -> None:
    # Given a classifier at version 1
    status, v1 = train(stack, api_event, lambda_context, TRAIN_V1)
    assert status == 200, v1
    cid = v1["classifier_id"]
    fewshot.WEIGHTS_CACHE.clear()  # the update reads v1's weights from S3
    # When the store faults twice on one step of the update (then recovers)
    with stack.faults.fault(service, operation, kind, times=2) as rule:
        status, v2 = train(stack, api_event, lambda_context, TRAIN_V2, cid)
    # Then botocore retried with backoff and the call succeeded
    assert rule.injected == 2
    assert status == 200 and v2["version"] == 2, v2
    assert len(stack.delays) >= 2 and all(d >= 0 for d in stack.delays)
    assert_consistent(stack, cid, 2)
    OUTCOMES[f"retried then 200 ({kind})"] += 1


# -- a store that stays down ------------------------------------------------------------------------

#: (route, the step that stays down)
DOWN = [
    ("classify-zero-shot", "dynamodb", "GetItem"),  # authentication
    ("classify-by-id", "dynamodb", "GetItem"),
    ("classify-by-id", "s3", "GetObject"),  # a version not yet cached
    ("train-create", "s3", "PutObject"),
    ("train-create", "dynamodb", "PutItem"),
    ("train-update", "dynamodb", "UpdateItem"),
    ("list", "dynamodb", "Query"),
    ("get", "dynamodb", "GetItem"),
    ("delete", "dynamodb", "DeleteItem"),
]
KINDS = ["throttle", "error", "timeout"]
#: CLIENT_CONFIG's ``max_attempts: 4`` counts retries: 1 attempt + 4 retries (botocore normalises it
#: to ``total_max_attempts`` when a client is made).
TOTAL_ATTEMPTS = 5


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("route", "service", "operation"), DOWN, ids=["/".join(d) for d in DOWN])
def test_a_store_that_stays_down_is_a_503_in_the_envelope(
    stack: Stack,
    api_event: Any,
    lambda_context: Any,
    route: str,
    service: str,
    operation: str,
    kind: str,
) -> None:
    # Given a classifier at version 1
    status, v1 = train(stack, api_event, lambda_context, TRAIN_V1)
    assert status == 200, v1
    cid = v1["classifier_id"]
    fewshot.WEIGHTS_CACHE.clear()
    requests = {
        "classify-zero-shot": ("POST", "/v1/classify", {"input": ["hello"], "labels": ["a", "b"]}),
        "classify-by-id": ("POST", "/v1/classify", {"input": [f"{SECRET} refund"], "classifier_id": cid}),
        "train-create": ("POST", "/v1/train", {"input": TRAIN_V1}),
        "train-update": ("POST", "/v1/train", {"input": TRAIN_V2, "classifier_id": cid}),
        "list": ("GET", "/v1/classifiers", None),
        "get": ("GET", f"/v1/classifiers/{cid}", None),
        "delete": ("DELETE", f"/v1/classifiers/{cid}", None),
    }
    method, path, body = requests[route]
    # When that step of the route fails on every attempt
    with stack.faults.fault(service, operation, kind) as rule:
        status, out = stack.call(event(api_event, stack, method, path, body), lambda_context)
    # Then the answer is a 503 SERVICE_UNAVAILABLE in Jina's envelope, after the retries
    assert status == 503, out
    assert out["code"] == "SERVICE_UNAVAILABLE" and out["request_id"] and out["detail"]
    assert set(out) <= {"code", "detail", "request_id", "errors"}
    assert rule.injected == TOTAL_ATTEMPTS
    # And the classifier is still whole at version 1
    assert_consistent(stack, cid, 1)
    OUTCOMES[f"store down -> 503 ({kind})"] += 1


# -- train: a failure at each step leaves the previous version served ----------------------------------

#: (step, faults, expected status). Steps of commit_version: put the new blob, conditionally update
#: the meta item, delete the obsolete blob. "lost" = the write lands but its answer is lost.
TRAIN_STEPS = [
    ("read-meta", [("dynamodb", "GetItem", "error", None, 1)], 503),
    ("read-weights", [("s3", "GetObject", "error", None, 0)], 503),
    ("put-weights", [("s3", "PutObject", "error", None, 0)], 503),
    ("commit", [("dynamodb", "UpdateItem", "error", None, 0)], 503),
    (
        "commit-and-cleanup",
        [("dynamodb", "UpdateItem", "timeout", None, 0), ("s3", "DeleteObject", "error", None, 0)],
        503,
    ),
    ("cleanup-after-commit", [("s3", "DeleteObject", "error", None, 0)], 200),
    ("commit-answer-lost", [("dynamodb", "UpdateItem", "lost", 1, 0)], 200),
    ("commit-answers-all-lost", [("dynamodb", "UpdateItem", "lost", None, 0)], 200),
]


@pytest.mark.parametrize(("step", "rules", "expected"), TRAIN_STEPS, ids=[s[0] for s in TRAIN_STEPS])
def test_train_failure_at_each_step_leaves_the_previous_version_served(
    stack: Stack,
    api_event: Any,
    lambda_context: Any,
    step: str,
    rules: list[tuple[str, str, str, int | None, int]],
    expected: int,
) -> None:
    # Given a classifier at version 1, classified with once
    status, v1 = train(stack, api_event, lambda_context, TRAIN_V1)
    assert status == 200, v1
    cid = v1["classifier_id"]
    fewshot.WEIGHTS_CACHE.clear()
    # When an update fails at this step (the store stays down there, or the answer is lost)
    for service, operation, kind, times, skip in rules:
        stack.faults.add(service, operation, kind, times, skip)
    status, out = train(stack, api_event, lambda_context, TRAIN_V2, cid)
    stack.faults.clear()
    # Then the answer is the expected one, never a 500
    assert status == expected, out
    version = 2 if expected == 200 else 1
    if expected == 503:
        assert out["code"] == "SERVICE_UNAVAILABLE"
    # And the meta item names a version whose weights load: no half-written version is visible
    assert_consistent(stack, cid, version)
    if expected == 503 and step != "commit-and-cleanup":
        assert len(stack.blobs(cid)) == 1, stack.blobs(cid)  # the failed version's blob is gone
    # And classifying serves that version (from S3, not from a cache)
    fewshot.WEIGHTS_CACHE.clear()
    status, classified = stack.call(
        event(api_event, stack, "POST", "/v1/classify", {"input": ["refund"], "classifier_id": cid}),
        lambda_context,
    )
    assert status == 200, classified
    labels = {score["label"] for score in classified["data"][0]["predictions"]}
    assert ("account" in labels) == (version == 2)
    OUTCOMES[f"train step {step} -> {status if expected == 200 else expected}, v{version} served"] += 1


def test_classify_keeps_serving_the_cached_version_while_s3_is_down(
    stack: Stack, api_event: Any, lambda_context: Any
) -> None:
    # Given a classifier at version 1 that has been classified with (its weights are cached)
    status, v1 = train(stack, api_event, lambda_context, TRAIN_V1)
    cid = v1["classifier_id"]
    body = {"input": ["refund"], "classifier_id": cid}
    assert stack.call(event(api_event, stack, "POST", "/v1/classify", body), lambda_context)[0] == 200
    # When S3 stays down, and a train call for version 2 fails on it
    with stack.faults.fault("s3", "PutObject", "error"), stack.faults.fault("s3", "GetObject", "error"):
        status_train, _ = train(stack, api_event, lambda_context, TRAIN_V2, cid)
        status, out = stack.call(event(api_event, stack, "POST", "/v1/classify", body), lambda_context)
    # Then training is a 503, and classification still answers with version 1
    assert status_train == 503
    assert status == 200, out
    assert {s["label"] for s in out["data"][0]["predictions"]} == {"billing", "shipping"}
    assert_consistent(stack, cid, 1)
    OUTCOMES["classify during S3 outage -> 200 (cached v1)"] += 1


def test_usage_counter_failure_does_not_fail_classification(
    stack: Stack, api_event: Any, lambda_context: Any
) -> None:
    # Given a classifier
    status, v1 = train(stack, api_event, lambda_context, TRAIN_V1)
    cid = v1["classifier_id"]
    # When DynamoDB refuses every UpdateItem (the usage counter classify bumps)
    with stack.faults.fault("dynamodb", "UpdateItem", "capacity"):
        status, out = stack.call(
            event(api_event, stack, "POST", "/v1/classify", {"input": ["refund"], "classifier_id": cid}),
            lambda_context,
        )
    # Then the classification is still answered
    assert status == 200, out
    OUTCOMES["usage counter down -> classify 200"] += 1


@pytest.mark.parametrize("fail_open", [False, True], ids=["fail-closed", "fail-open"])
def test_quota_store_down_answers_503_unless_configured_to_fail_open(
    stack: Stack, api_event: Any, lambda_context: Any, aws: dict[str, Any], fail_open: bool
) -> None:
    # Given the API with its DynamoDB quota counters (100 requests per minute per key), fail-closed
    # by default or, when configured, fail-open
    configured = stack.app_settings.model_copy(update={"rate_limit_requests_per_minute": 100})
    options = {"fail_open": True} if fail_open else {}
    limiter = DynamoRateLimiter(aws["created"].table_name, 100, 0, dynamodb=stack.ddb, **options)
    app = create_app(replace(stack.services, settings=configured, limiter=limiter))
    request = event(api_event, stack, "POST", "/v1/classify", {"input": ["hello"], "labels": ["a", "b"]})
    # When the quota table fails every attempt (500 InternalServerError) while auth still works
    with stack.faults.fault("dynamodb", "UpdateItem", "error") as rule:
        response = app.resolve(request, lambda_context)
    status, out = response["statusCode"], json.loads(response["body"])
    assert rule.injected >= TOTAL_ATTEMPTS
    if fail_open:
        # Then (fail-open) the request is served without a quota check
        assert status == 200, out
        OUTCOMES["quota store down, fail-open -> 200"] += 1
    else:
        # Then (fail-closed, the default) it is a 503 SERVICE_UNAVAILABLE in Jina's envelope, never
        # a request admitted without a quota
        assert status == 503, out
        assert out["code"] == "SERVICE_UNAVAILABLE" and out["request_id"] and out["detail"]
        assert set(out) <= {"code", "detail", "request_id", "errors"}
        OUTCOMES["quota store down, fail-closed -> 503"] += 1


# -- uploads ----------------------------------------------------------------------------------------


@pytest.fixture
def uploads(aws: dict[str, Any], settings: Settings, caplog: pytest.LogCaptureFixture) -> Iterator[Any]:
    caplog.set_level(logging.DEBUG)
    faults = FaultInjector()
    session, endpoint = aws["session"], aws["endpoint"]
    created = aws["created"]
    s3 = session.client(
        "s3", endpoint_url=endpoint, config=STREAM_CONFIG.merge(Config(s3={"addressing_style": "path"}))
    )
    ddb, _, sqs = clients(aws, faults)
    faults.install(s3)
    keys = AwsKeyStore(created.table_name, dynamodb=ddb)
    _, record = keys.create("tenant-uploads", "uploader")
    services = Services(
        settings=settings.model_copy(update={"uploads_part_records": 2}),
        registry=ModelRegistry.from_embedders([HashingEmbedder()]),
        store=AwsClassifierStore(created.table_name, created.bucket_name, dynamodb=ddb, s3=s3),
        keys=keys,
    )
    queue_url = next(iter(created.queues.values()))
    jobs = UploadJobs(
        services,
        S3ObjectStore(created.bucket_name, s3=s3),
        SqsContinuationQueue(queue_url, sqs=sqs),
        bucket=created.bucket_name,
    )
    delays: list[float] = []
    with no_backoff_sleep(delays):
        yield {
            "jobs": jobs,
            "s3": s3,
            "faults": faults,
            "bucket": created.bucket_name,
            "key_id": record.key_id,
        }
    for (service, operation, kind), n in faults.injected.items():
        TALLY[f"{service} {operation} {kind}"] += n
    leaked = [r.getMessage() for r in caplog.records if SECRET in r.getMessage() or SECRET in str(r.__dict__)]
    assert not leaked, leaked


def s3_event(bucket: str, key: str, info: dict[str, Any]) -> str:
    return json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": bucket},
                        "object": {
                            "key": key,
                            "size": info["ContentLength"],
                            "eTag": info["ETag"].strip('"'),
                            **({"versionId": info["VersionId"]} if info.get("VersionId") else {}),
                        },
                    },
                }
            ]
        }
    )


#: Upload steps: read the object, write a part, assemble the results, write the summary.
UPLOAD_STEPS = [
    ("head", "HeadObject", 0),
    ("read", "GetObject", 0),
    ("write-part", "PutObject", 1),
    ("write-results", "PutObject", 6),
]


@pytest.mark.parametrize(("step", "operation", "skip"), UPLOAD_STEPS, ids=[s[0] for s in UPLOAD_STEPS])
def test_upload_failures_are_redelivered_and_never_write_partial_results(
    uploads: dict[str, Any], step: str, operation: str, skip: int
) -> None:
    jobs, s3, faults, bucket = uploads["jobs"], uploads["s3"], uploads["faults"], uploads["bucket"]
    # Given an uploaded JSONL file of 5 records (3 parts of 2) with a zero-shot configuration
    key = f"uploads/faults/{step}.jsonl"
    body = b"".join(
        json.dumps({"id": f"r{i}", "text": f"{SECRET} record {i}"}).encode() + b"\n" for i in range(5)
    )
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        Metadata={"labels": json.dumps(["billing", "shipping"]), "api-key-id": uploads["key_id"]},
    )
    info = s3.head_object(Bucket=bucket, Key=key)
    message = s3_event(bucket, key, info)
    results = key.replace("uploads/", "results/", 1) + ".jsonl"
    # When S3 stays down at this step of the first delivery
    with faults.fault("s3", operation, "error", skip=skip) as rule, pytest.raises(Exception) as raised:
        jobs.handle_message(message, unlimited)
    # Then the message fails (not deleted: SQS redelivers it) with a retryable error
    assert rule.injected >= 1
    assert type(raised.value).__name__ in {"StoreUnavailable", "ServiceUnavailable"}, raised.value
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="results/faults/")
    names = [o["Key"] for o in listed.get("Contents", [])]
    # And no results file (or summary) is visible, only complete parts may exist
    assert results not in names and results.replace(".jsonl", ".summary.json") not in names
    # When the message is redelivered with S3 back
    outcomes = jobs.handle_message(message, unlimited)
    # Then the results are complete, each record once
    assert [o.status for o in outcomes] == ["done"]
    lines = s3.get_object(Bucket=bucket, Key=results)["Body"].read().decode().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == [f"r{i}" for i in range(5)]
    OUTCOMES[f"upload {step} down -> message retried, then done"] += 1


def test_upload_throttling_is_retried_within_the_delivery(uploads: dict[str, Any]) -> None:
    jobs, s3, faults, bucket = uploads["jobs"], uploads["s3"], uploads["faults"], uploads["bucket"]
    # Given an uploaded file
    key = "uploads/faults/throttled.jsonl"
    body = b"".join(json.dumps({"text": f"{SECRET} {i}"}).encode() + b"\n" for i in range(3))
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        Metadata={"labels": json.dumps(["a", "b"]), "api-key-id": uploads["key_id"]},
    )
    message = s3_event(bucket, key, s3.head_object(Bucket=bucket, Key=key))
    # When S3 throttles (SlowDown) twice on reads and writes
    with (
        faults.fault("s3", "GetObject", "throttle", times=2),
        faults.fault("s3", "PutObject", "throttle", times=2),
    ):
        outcomes = jobs.handle_message(message, unlimited)
    # Then the one delivery finishes
    assert [o.status for o in outcomes] == ["done"]
    OUTCOMES["upload throttled -> retried, done in one delivery"] += 1
