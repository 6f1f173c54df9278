"""Bulk uploads end to end against moto's server over HTTP (S3 + SQS + DynamoDB from template.yaml).

An object is put into the bucket; moto's S3 sends the real notification to the queue configured by the
template; the message is received from the queue and handed to ``functions/classify/uploads.py`` in an
SQS event, like Lambda's event source mapping (BatchSize 1) does; follow-up checkpoints go through the
same queue. The real int8 model classifies, except in the 100,000-line test (hashing embedder injected).
"""

from __future__ import annotations

import copy
import functools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from labelwise.classify import fewshot
from labelwise.embedding.registry import ModelRegistry
from labelwise.errors import ResourceNotFound
from labelwise.learning.mixture import load_learner
from labelwise.server import LocalLambdaContext
from labelwise.services import Services
from labelwise.settings import Settings, get_settings
from labelwise.uploads.jobs import UploadJobs
from tests.support.fakes import HashingEmbedder
from tests.support.lambda_stack import import_entry, lambda_environment, moto_stack
from tests.support.template import load_template, resolve

REPO = Path(__file__).resolve().parents[2]
MODEL = "multilingual-e5-small"
LABELS = ["billing and payments", "account access", "delivery and shipping"]
TICKETS = [
    "I was charged twice on my invoice",
    "I cannot log in, my password is rejected",
    "Where is my parcel? The delivery is late",
]


@dataclass
class BudgetContext(LocalLambdaContext):
    """A Lambda context whose remaining time is fixed (a small per-invocation budget)."""

    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


class CachedHashingEmbedder(HashingEmbedder):
    """The hashing embedder with memoised word vectors (fast enough for 100,000 lines on 2 cores)."""

    @functools.cache  # noqa: B019 (one instance per test module)
    def _word_vector(self, word: str) -> np.ndarray:
        return super()._word_vector(word)


@dataclass
class Deployed:
    module: ModuleType
    s3: Any
    sqs: Any
    bucket: str
    queue_url: str
    dlq_url: str
    settings: Settings
    key_id: str


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    model_dir = Settings.from_environ().model_dir
    mp = pytest.MonkeyPatch()
    with moto_stack(mp) as stack:
        endpoint, session, created = stack.endpoint, stack.session, stack.created
        s3 = session.client("s3", endpoint_url=endpoint)
        sqs = session.client("sqs", endpoint_url=endpoint)
        # The bucket's notification configuration, from the template (queue ARN resolved)
        template = load_template()
        notification = resolve(
            template["Resources"]["LabelwiseBucket"]["Properties"]["NotificationConfiguration"],
            created.refs,
            {(q, "Arn"): arn for q, arn in created.queue_arns.items()},
        )
        # (CloudFormation's names -> the S3 API's)
        queues = [
            {
                "QueueArn": q["Queue"],
                "Events": [q["Event"]],
                "Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}},
            }
            for q in notification["QueueConfigurations"]
        ]
        s3.put_bucket_notification_configuration(
            Bucket=created.bucket_name, NotificationConfiguration={"QueueConfigurations": queues}
        )
        env = lambda_environment("UploadsFunction", created, endpoint, model_dir, "labelwise-uploads")
        for k, v in env.items():
            mp.setenv(k, v)
        get_settings.cache_clear()
        module = import_entry("lambda_uploads", REPO / "functions" / "classify" / "uploads.py")
        settings = get_settings()
        _, record = module.jobs.services.keys.create("tenant-up", "uploader")
        d = Deployed(
            module=module,
            s3=s3,
            sqs=sqs,
            bucket=created.bucket_name,
            queue_url=created.queues["UploadsQueue"],
            dlq_url=created.queues["UploadsDeadLetterQueue"],
            settings=settings,
            key_id=record.key_id,
        )
        # S3 sends an s3:TestEvent when the notification is configured; the handler ignores it
        assert drain(d) == [{"batchItemFailures": []}]
        yield d
        get_settings.cache_clear()
    mp.undo()
    sys.modules.pop("lambda_uploads", None)


@pytest.fixture
def real_model(deployed: Deployed) -> None:
    if MODEL not in deployed.module.jobs.services.registry.available:
        pytest.skip(f"int8 model {MODEL} not built in {deployed.settings.model_dir}: run `make model`")


def sqs_event(
    messages: list[dict[str, Any]], queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:q"
) -> dict[str, Any]:
    """The Lambda SQS event for received messages (what the event source mapping sends)."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def drain(d: Deployed, context: Any | None = None, max_invocations: int = 1000) -> list[dict[str, Any]]:
    """Deliver every queued message to the handler one at a time until the queue is empty; returns
    the handler's responses. Successful messages are deleted, as the event source mapping does."""
    context = context or BudgetContext(function_name="labelwise-uploads", aws_request_id="req")
    responses = []
    for _ in range(max_invocations):
        received = d.sqs.receive_message(QueueUrl=d.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=0)
        messages = received.get("Messages", [])
        if not messages:
            return responses
        response = d.module.lambda_handler(sqs_event(messages), context)
        responses.append(response)
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        for m in messages:
            if m["MessageId"] not in failed:
                d.sqs.delete_message(QueueUrl=d.queue_url, ReceiptHandle=m["ReceiptHandle"])
            else:
                d.sqs.change_message_visibility(
                    QueueUrl=d.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
    raise AssertionError("queue did not drain")


def put(d: Deployed, key: str, body: bytes, **metadata: str) -> dict[str, Any]:
    response: dict[str, Any] = d.s3.put_object(Bucket=d.bucket, Key=key, Body=body, Metadata=metadata)
    return response


def get_json(d: Deployed, key: str) -> Any:
    return json.loads(d.s3.get_object(Bucket=d.bucket, Key=key)["Body"].read())


def get_lines(d: Deployed, key: str) -> list[dict[str, Any]]:
    body = d.s3.get_object(Bucket=d.bucket, Key=key)["Body"].read().decode()
    return [json.loads(line) for line in body.splitlines()]


def keys(d: Deployed, prefix: str) -> list[str]:
    listed = d.s3.list_objects_v2(Bucket=d.bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def jsonl(texts: list[str]) -> bytes:
    return b"".join(json.dumps({"id": f"t{i}", "text": t}).encode() + b"\n" for i, t in enumerate(texts))


# ------------------------------------------------------------------------------------ real model
def test_uploaded_file_is_classified_through_the_queue(deployed: Deployed, real_model: None) -> None:
    # Given a JSON Lines file with labels in its metadata, uploaded under uploads/
    key = "uploads/support/tickets.jsonl"
    put(
        deployed,
        key,
        jsonl(TICKETS) + b"{oops\n",
        labels=json.dumps(LABELS),
        **{"api-key-id": deployed.key_id},
    )
    # When moto's S3 event reaches the queue and the handler processes it
    responses = drain(deployed)
    # Then it was one message, with no failures
    assert responses == [{"batchItemFailures": []}]
    # And results/<same path>.jsonl has one line per good record, predicted by the real model
    rows = get_lines(deployed, "results/support/tickets.jsonl.jsonl")
    assert [(r["index"], r["id"], r["prediction"]) for r in rows] == [
        (0, "t0", "billing and payments"),
        (1, "t1", "account access"),
        (2, "t2", "delivery and shipping"),
    ]
    assert all(0 < r["score"] <= 1 and len(r["predictions"]) == 3 for r in rows)
    # And the summary counts the malformed line with its number and reason
    summary = get_json(deployed, "results/support/tickets.jsonl.summary.json")
    assert (summary["records_read"], summary["classified"], summary["rejected_count"]) == (4, 3, 1)
    assert summary["rejected"][0]["line"] == 4 and "invalid JSON" in summary["rejected"][0]["reason"]
    assert summary["model"] == MODEL and summary["duration_ms"] >= 0
    # And no parts or errors are left
    assert keys(deployed, "results/support/") == [
        "results/support/tickets.jsonl.jsonl",
        "results/support/tickets.jsonl.summary.json",
    ]
    assert keys(deployed, "errors/support/") == []


def test_repeated_delivery_gives_the_same_results(deployed: Deployed, real_model: None) -> None:
    # Given a processed CSV upload
    key = "uploads/repeat/data.csv"
    put(
        deployed,
        key,
        b'id,text\n1,"charged twice, refund please"\n2,parcel is late\n',
        labels=json.dumps(LABELS),
    )
    message = deployed.sqs.receive_message(QueueUrl=deployed.queue_url, MaxNumberOfMessages=1)["Messages"]
    context = BudgetContext(function_name="labelwise-uploads", aws_request_id="r1")
    assert deployed.module.lambda_handler(sqs_event(message), context) == {"batchItemFailures": []}
    first = deployed.s3.get_object(Bucket=deployed.bucket, Key="results/repeat/data.csv.jsonl")
    # When the very same message is delivered again (SQS is at-least-once)
    assert deployed.module.lambda_handler(sqs_event(message), context) == {"batchItemFailures": []}
    deployed.sqs.delete_message(QueueUrl=deployed.queue_url, ReceiptHandle=message[0]["ReceiptHandle"])
    # Then the results object was not rewritten (same version) and has no duplicates
    again = deployed.s3.get_object(Bucket=deployed.bucket, Key="results/repeat/data.csv.jsonl")
    assert again["VersionId"] == first["VersionId"]
    assert len(get_lines(deployed, "results/repeat/data.csv.jsonl")) == 2


def test_sample_event_with_url_encoded_key(deployed: Deployed, real_model: None) -> None:
    # Given an object whose key has spaces and non-ASCII characters
    key = "uploads/équipe support/tickets 2026.txt"
    put(deployed, key, "\n".join(TICKETS).encode(), labels=json.dumps(LABELS))
    drain(deployed)  # moto's own event
    deployed.s3.delete_object(
        Bucket=deployed.bucket, Key="results/équipe support/tickets 2026.txt.summary.json"
    )
    # When the sample SQS event (S3 notification in its body, key URL-encoded) names it
    event = json.loads((REPO / "events" / "s3-upload-via-sqs.json").read_text(encoding="utf-8"))
    record = event["Records"][0]
    body = json.loads(record["body"])
    head = deployed.s3.head_object(Bucket=deployed.bucket, Key=key)
    s3 = body["Records"][0]["s3"]
    s3["bucket"]["name"] = deployed.bucket
    s3["object"].update(
        {"key": "uploads/%C3%A9quipe+support/tickets+2026.txt", "eTag": head["ETag"].strip('"')}
    )
    s3["object"]["versionId"] = head["VersionId"]
    record["body"] = json.dumps(body)
    response = deployed.module.lambda_handler(copy.deepcopy(event), BudgetContext(aws_request_id="r2"))
    # Then the decoded key was classified into results/<same path>
    assert response == {"batchItemFailures": []}
    summary = get_json(deployed, "results/équipe support/tickets 2026.txt.summary.json")
    assert summary["source"]["key"] == key and summary["classified"] == 3


def test_bad_metadata_gets_an_error_document(deployed: Deployed, real_model: None) -> None:
    # Given uploads that cannot be used: no configuration, unknown model, unknown format
    put(deployed, "uploads/bad/none.jsonl", jsonl(TICKETS))
    put(
        deployed, "uploads/bad2/model.jsonl", jsonl(TICKETS), labels=json.dumps(LABELS), model="no-such-model"
    )
    put(deployed, "uploads/sheet.xlsx", b"PK\x03\x04", labels=json.dumps(LABELS))
    # When they are processed
    responses = drain(deployed)
    # Then no message failed (nothing to retry) and each has errors/<same path>.json
    assert all(r == {"batchItemFailures": []} for r in responses) and len(responses) == 3
    assert "Classifier 'bad' does not exist" in get_json(deployed, "errors/bad/none.jsonl.json")["message"]
    assert get_json(deployed, "errors/bad2/model.jsonl.json")["code"] == "INPUT_MODEL_NOT_FOUND"
    assert "Unknown file format" in get_json(deployed, "errors/sheet.xlsx.json")["message"]
    assert keys(deployed, "results/bad") == []


def test_failing_message_is_reported_as_a_batch_item_failure(deployed: Deployed) -> None:
    # Given a message that is not an S3 event at all
    deployed.sqs.send_message(QueueUrl=deployed.queue_url, MessageBody='{"Records": "garbage"}')
    message = deployed.sqs.receive_message(QueueUrl=deployed.queue_url, MaxNumberOfMessages=1)["Messages"]
    # When the handler gets it
    response = deployed.module.lambda_handler(sqs_event(message), BudgetContext(aws_request_id="r3"))
    # Then only that message is reported failed (the queue retries it, then dead-letters it)
    assert response == {"batchItemFailures": [{"itemIdentifier": message[0]["MessageId"]}]}
    deployed.sqs.delete_message(QueueUrl=deployed.queue_url, ReceiptHandle=message[0]["ReceiptHandle"])


# ------------------------------------------------------------------------- 100,000 lines (fake)
@pytest.mark.slow
def test_large_file_continues_from_checkpoints_until_done(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the handler's runner with the hashing embedder, parts of 10,000 records and a 1 s margin
    real = deployed.module.jobs
    settings = real.services.settings.model_copy(
        update={
            "default_model": "fake-model",
            "uploads_part_records": 10_000,
            "uploads_safety_margin_ms": 1000,
        }
    )
    services = Services(
        settings=settings,
        registry=ModelRegistry.from_embedders([CachedHashingEmbedder()]),
        store=real.services.store,
        keys=real.services.keys,
    )
    monkeypatch.setattr(
        deployed.module, "jobs", UploadJobs(services, real.objects, real.continuations, bucket=real.bucket)
    )
    # And a 100,000-line text file with some blank lines and some lines too long to keep
    words = ["invoice charge", "password login", "parcel delivery late"]
    lines = [f"{words[i % 3]} {i % 7}" for i in range(100_000)]
    for i in range(0, 100_000, 25_000):
        lines[i] = "x" * (settings.uploads_max_line_bytes + 10)
    put(deployed, "uploads/big/lines.txt", ("\n".join(lines) + "\n").encode(), labels=json.dumps(LABELS))
    # When every invocation has only the safety margin plus 1 ms left (one part each)
    responses = drain(deployed, BudgetContext(aws_request_id="big", remaining_ms=1001))
    # Then it took ten invocations (one per part), chained by follow-up messages, none failed
    assert len(responses) == 10 and all(r == {"batchItemFailures": []} for r in responses)
    # And every record was read once, in order, with the long lines rejected by line number
    summary = get_json(deployed, "results/big/lines.txt.summary.json")
    assert (summary["records_read"], summary["classified"], summary["rejected_count"]) == (100_000, 99_996, 4)
    assert [r["line"] for r in summary["rejected"]] == [1, 25_001, 50_001, 75_001]
    assert summary["parts"] == 10 and summary["invocations"] == 10
    rows = get_lines(deployed, "results/big/lines.txt.jsonl")
    assert len(rows) == 99_996
    assert [r["index"] for r in rows] == [i for i in range(100_000) if i % 25_000]
    assert rows[0]["line"] == 2 and rows[-1]["line"] == 100_000
    # And no parts are left behind
    assert keys(deployed, "results/big/") == [
        "results/big/lines.txt.jsonl",
        "results/big/lines.txt.summary.json",
    ]


# ------------------------------------------------------------- continuation chains and the hop cap
def _hashing_jobs(deployed: Deployed, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> Settings:
    """Replace the handler's runner by one with the hashing embedder and ``overrides`` settings."""
    real = deployed.module.jobs
    settings = real.services.settings.model_copy(update={"default_model": "fake-model", **overrides})
    services = Services(
        settings=settings,
        registry=ModelRegistry.from_embedders([CachedHashingEmbedder()]),
        store=real.services.store,
        keys=real.services.keys,
    )
    monkeypatch.setattr(
        deployed.module, "jobs", UploadJobs(services, real.objects, real.continuations, bucket=real.bucket)
    )
    return settings


def test_file_needing_more_than_16_continuations_completes(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the handler as deployed (hop cap from the template's default) but parts of 5 records and
    # a 1 s safety margin, and a budget of the margin plus 1 ms per invocation (one part each)
    assert deployed.settings.uploads_max_hops == 1000  # LABELWISE_UPLOADS_MAX_HOPS from template.yaml
    _hashing_jobs(deployed, monkeypatch, uploads_part_records=5, uploads_safety_margin_ms=1000)
    words = ["invoice charge", "password login", "parcel delivery late"]
    texts = [f"{words[i % 3]} {i}" for i in range(120)]
    put(deployed, "uploads/chain/long.jsonl", jsonl(texts), labels=json.dumps(LABELS))
    # When the queue is drained (each follow-up goes through the same SQS queue: SQS -> Lambda -> SQS)
    responses = drain(deployed, BudgetContext(aws_request_id="chain", remaining_ms=1001))
    # Then 24 invocations, chained by 23 follow-up messages (more than Lambda's ~16-hop loop
    # detection would let through), none failed
    assert len(responses) == 24 and all(r == {"batchItemFailures": []} for r in responses)
    # And every record is in the results, once, in order
    summary = get_json(deployed, "results/chain/long.jsonl.summary.json")
    assert (summary["records_read"], summary["classified"], summary["parts"]) == (120, 120, 24)
    assert summary["invocations"] == 24
    rows = get_lines(deployed, "results/chain/long.jsonl.jsonl")
    assert [r["id"] for r in rows] == [f"t{i}" for i in range(120)]
    assert keys(deployed, "results/chain/") == [
        "results/chain/long.jsonl.jsonl",
        "results/chain/long.jsonl.summary.json",
    ]
    assert keys(deployed, "errors/chain/") == []


def test_hop_cap_stops_a_job_with_a_recorded_error(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a hop cap of 4 follow-up messages, parts of 5 records, one part per invocation
    _hashing_jobs(
        deployed, monkeypatch, uploads_part_records=5, uploads_safety_margin_ms=1000, uploads_max_hops=4
    )
    # And a 40-record file (8 parts: 7 follow-ups needed)
    put(
        deployed,
        "uploads/capped/long.jsonl",
        jsonl([f"invoice {i}" for i in range(40)]),
        labels=json.dumps(LABELS),
    )
    # When the queue is drained
    responses = drain(deployed, BudgetContext(aws_request_id="capped", remaining_ms=1001))
    # Then the chain stopped after 4 follow-ups (5 invocations), every message succeeded (no retry
    # or dead letter: retrying would not help) and the queue is empty
    assert len(responses) == 5 and all(r == {"batchItemFailures": []} for r in responses)
    attributes = deployed.sqs.get_queue_attributes(
        QueueUrl=deployed.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    # And errors/<path>.json records the cap; no results, summary or parts are left
    error = get_json(deployed, "errors/capped/long.jsonl.json")
    assert error["code"] == "UPLOAD_TOO_MANY_CONTINUATIONS"
    assert "more than 4 follow-up messages" in error["message"]
    assert error["source"]["key"] == "uploads/capped/long.jsonl"
    assert keys(deployed, "results/capped/") == []


# ---------------------------------------------------------------- the classifier version is pinned
def _deliver_one(d: Deployed, context: Any) -> dict[str, Any]:
    """Deliver the next queued message to the handler (and delete it if it succeeded)."""
    messages = d.sqs.receive_message(QueueUrl=d.queue_url, MaxNumberOfMessages=1)["Messages"]
    response: dict[str, Any] = d.module.lambda_handler(sqs_event(messages), context)
    if not response["batchItemFailures"]:
        d.sqs.delete_message(QueueUrl=d.queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
    return response


def test_classifier_retrained_between_parts_scores_the_whole_file_with_the_pinned_version(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the handler with the hashing embedder, parts of 5 records, one part per invocation
    _hashing_jobs(deployed, monkeypatch, uploads_part_records=5, uploads_safety_margin_ms=1000)
    services = deployed.module.jobs.services
    owner = services.keys.get(deployed.key_id)
    assert owner is not None
    # And a classifier at version 1 (its weights kept aside to score with later)
    examples = [("invoice billing charge refund", "billing"), ("login password account locked", "account")]
    trained = fewshot.train(
        services.registry, services.store, services.settings, owner, examples=examples * 3
    )
    v1 = load_learner(services.store.load_weights(trained.classifier_id, 1), zero_shot_temperature=0.1)
    # And a 20-record file (4 parts) uploaded for it
    words = ["invoice charge", "password login", "billing refund", "account locked"]
    texts = [f"{words[i % 4]} {i}" for i in range(20)]
    key = "uploads/pinned/tickets.jsonl"
    put(
        deployed, key, jsonl(texts),
        **{"classifier-id": trained.classifier_id, "api-key-id": deployed.key_id},
    )  # fmt: skip
    context = BudgetContext(aws_request_id="pinned", remaining_ms=1001)
    # When the first part is processed, then the classifier is retrained twice (labels swapped), so
    # version 1 is no longer kept by the store, and then the rest of the file is processed
    assert _deliver_one(deployed, context) == {"batchItemFailures": []}
    swapped = [(text, "account" if label == "billing" else "billing") for text, label in examples]
    for _ in range(2):
        fewshot.train(
            services.registry, services.store, services.settings, owner,
            examples=swapped * 5, classifier_id=trained.classifier_id,
        )  # fmt: skip
    with pytest.raises(ResourceNotFound):
        services.store.load_weights(trained.classifier_id, 1)
    responses = drain(deployed, context)
    # Then the job finished (3 more invocations), none failed
    assert len(responses) == 3 and all(r == {"batchItemFailures": []} for r in responses)
    # And the summary names version 1
    summary = get_json(deployed, "results/pinned/tickets.jsonl.summary.json")
    assert (summary["classifier_id"], summary["classifier_version"]) == (trained.classifier_id, 1)
    assert (summary["classified"], summary["parts"]) == (20, 4)
    # And every row, in every part, has version 1's scores (version 3 would score them otherwise)
    rows = get_lines(deployed, "results/pinned/tickets.jsonl.jsonl")
    embedder = services.registry.get(None)
    vectors = embedder.embed(texts, "input").vectors
    expected = v1.predict_proba(vectors)
    current = fewshot.classify_with_classifier(
        services.registry, services.store, services.settings, owner,
        classifier_id=trained.classifier_id, texts=texts,
    )  # fmt: skip
    assert current.probabilities.argmax(1).tolist() != expected.argmax(1).tolist()
    for row, probabilities in zip(rows, expected, strict=True):
        scores = {p["label"]: p["score"] for p in row["predictions"]}
        assert scores == pytest.approx(dict(zip(v1.labels, probabilities.tolist(), strict=True)), abs=1e-6)
    # And the pinned snapshot went with the parts
    assert keys(deployed, "results/pinned/") == [
        "results/pinned/tickets.jsonl.jsonl",
        "results/pinned/tickets.jsonl.summary.json",
    ]
