"""The upload job runner with in-memory objects, an in-process queue and the hashing embedder."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from labelwise.classify import fewshot
from labelwise.embedding.registry import ModelRegistry
from labelwise.learning.mixture import load_learner
from labelwise.services import Services
from labelwise.settings import Settings
from labelwise.storage.memory import MemoryClassifierStore, MemoryKeyStore
from labelwise.uploads.classifying import config_from_upload
from labelwise.uploads.jobs import BUCKET_LAYOUT, Outcome, UploadJobs, unlimited
from labelwise.uploads.models import CHECKPOINT_MESSAGE, Checkpoint, UploadConfig, UploadEvent
from labelwise.uploads.objects import MemoryObjectStore
from labelwise.uploads.ports import InlineQueue
from labelwise.uploads.readers import UnusableUpload
from tests.support.fakes import HashingEmbedder

BUCKET = "bucket"
LABELS = ["billing invoice", "login password", "shipping delivery"]


def make_services(settings: Settings, **overrides: Any) -> Services:
    return Services(
        settings=settings.model_copy(update=overrides),
        registry=ModelRegistry.from_embedders([HashingEmbedder()]),
        store=MemoryClassifierStore(),
        keys=MemoryKeyStore(),
    )


class World:
    """A bucket, a queue and the runner, plus helpers to upload and to deliver messages."""

    def __init__(self, settings: Settings, **overrides: Any) -> None:
        self.services = make_services(settings, **overrides)
        self.objects = MemoryObjectStore()
        self.queue = InlineQueue()
        self.jobs = UploadJobs(self.services, self.objects, self.queue, bucket=BUCKET)

    def upload(self, key: str, data: bytes, **metadata: str) -> UploadEvent:
        info = self.objects.upload(key, data, metadata)
        return UploadEvent(bucket=BUCKET, key=key, version_id=info.version_id, etag=info.etag)

    def deliver(self, event: UploadEvent, budget: Callable[[], int] = unlimited) -> Outcome:
        """The first outcome of the event, then every follow-up message until the queue is empty."""
        outcome = self.jobs.start(event, budget)
        for checkpoint in self.queue.drain():
            body = json.dumps({CHECKPOINT_MESSAGE: checkpoint.model_dump(mode="json")})
            (outcome,) = self.jobs.handle_message(body, budget)
        return outcome

    def deliver_pending(self, budget: Callable[[], int] = unlimited) -> Outcome:
        """Every queued follow-up message until the queue is empty; the last outcome."""
        outcome = None
        for checkpoint in self.queue.drain():
            body = json.dumps({CHECKPOINT_MESSAGE: checkpoint.model_dump(mode="json")})
            (outcome,) = self.jobs.handle_message(body, budget)
        assert outcome is not None
        return outcome

    def results(self, key: str) -> list[dict[str, Any]]:
        body = self.objects.get(BUCKET_LAYOUT.results(key))
        assert body is not None
        return [json.loads(line) for line in body.decode().splitlines()]

    def summary(self, key: str) -> dict[str, Any]:
        body = self.objects.get(BUCKET_LAYOUT.summary(key))
        assert body is not None
        result: dict[str, Any] = json.loads(body)
        return result

    def error(self, key: str) -> dict[str, Any]:
        body = self.objects.get(BUCKET_LAYOUT.error(key))
        assert body is not None
        result: dict[str, Any] = json.loads(body)
        return result


def lines(n: int) -> bytes:
    topics = ["my invoice billing is wrong", "cannot login password reset", "where is my delivery shipping"]
    return b"".join(json.dumps({"id": f"r{i}", "text": topics[i % 3]}).encode() + b"\n" for i in range(n))


LABEL_META = {"labels": json.dumps(LABELS)}


# --------------------------------------------------------------------------------------- config
def test_config_from_metadata_and_path_convention() -> None:
    # Given metadata with labels and a model
    config = config_from_upload(
        "uploads/a.csv", {"labels": '["x", "y"]', "model": "m", "api-key-id": "key_1"}
    )
    # Then it is a zero-shot job for that key
    assert (config.mode, config.labels, config.model, config.api_key_id) == (
        "zero-shot",
        ["x", "y"],
        "m",
        "key_1",
    )
    # And a classifier id comes from metadata, else from the first folder under uploads/
    assert config_from_upload("uploads/a.csv", {"classifier-id": "c1"}).classifier_id == "c1"
    by_path = config_from_upload("uploads/c2/2024/a.csv", {})
    assert (by_path.mode, by_path.classifier_id, by_path.source) == ("few-shot", "c2", "path")


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({}, "No classification configured"),
        ({"labels": "billing, bug"}, "is not JSON"),
        ({"labels": '{"a": 1}'}, "JSON list of strings"),
        ({"labels": '["a"]', "classifier-id": "c"}, "not both"),
    ],
)
def test_bad_metadata_is_unusable(metadata: dict[str, str], message: str) -> None:
    with pytest.raises(UnusableUpload, match=message):
        config_from_upload("uploads/file.jsonl", metadata)


# ------------------------------------------------------------------------------------- zero-shot
def test_zero_shot_file_gets_results_and_a_summary(settings: Settings) -> None:
    # Given a JSON Lines upload with labels in its metadata and one malformed line
    world = World(settings)
    data = lines(5) + b"{broken\n" + b'{"text": "invoice billing again"}\n'
    event = world.upload("uploads/team/tickets.jsonl", data, **LABEL_META)
    # When its event is delivered
    outcome = world.deliver(event)
    # Then every good record has a result line with index, id, prediction, score and predictions
    assert outcome.status == "done"
    rows = world.results("uploads/team/tickets.jsonl")
    assert [r["index"] for r in rows] == [0, 1, 2, 3, 4, 6]
    assert [r["id"] for r in rows] == ["r0", "r1", "r2", "r3", "r4", None]
    assert [r["prediction"] for r in rows[:3]] == LABELS
    assert all(set(r) == {"index", "id", "line", "prediction", "score", "predictions"} for r in rows)
    assert all(len(r["predictions"]) == 3 and r["predictions"][0]["label"] == r["prediction"] for r in rows)
    # And the summary counts them and names the rejected line and its reason
    summary = world.summary("uploads/team/tickets.jsonl")
    assert (summary["records_read"], summary["classified"], summary["rejected_count"]) == (7, 6, 1)
    assert summary["rejected"] == [{"line": 6, "index": 5, "reason": summary["rejected"][0]["reason"]}]
    assert summary["rejected"][0]["reason"].startswith("invalid JSON")
    assert summary["model"] == "fake-model" and summary["mode"] == "zero-shot"
    assert summary["source"]["version_id"] == event.version_id
    assert summary["results"] == "results/team/tickets.jsonl.jsonl"
    # And no parts or errors are left behind
    assert world.objects.keys() == [
        "results/team/tickets.jsonl.jsonl",
        "results/team/tickets.jsonl.summary.json",
        "uploads/team/tickets.jsonl",
    ]


def test_repeated_event_produces_the_same_results_not_duplicates(settings: Settings) -> None:
    # Given a file already processed once
    world = World(settings)
    event = world.upload("uploads/a.txt", b"invoice billing\nlogin password\n", **LABEL_META)
    assert world.deliver(event).status == "done"
    first = world.objects.get("results/a.txt.jsonl")
    writes = len(world.objects.writes)
    # When the same event is delivered again (at-least-once delivery)
    again = world.deliver(event)
    # Then nothing is recomputed or rewritten, and the results are unchanged
    assert again.status == "already-done"
    assert len(world.objects.writes) == writes
    assert world.objects.get("results/a.txt.jsonl") == first
    assert len(world.results("uploads/a.txt")) == 2


def test_duplicate_delivery_while_in_flight_writes_identical_bytes(settings: Settings) -> None:
    # Given a file whose first delivery stopped after one part (checkpoint sent, not yet handled)
    world = World(settings, uploads_part_records=3, uploads_safety_margin_ms=0)
    event = world.upload("uploads/b.jsonl", lines(10), **LABEL_META)
    first = world.jobs.start(event, lambda: 0)
    assert first.status == "continued" and len(world.queue.pending) == 1
    # When the original event is delivered again and runs to completion
    world.queue.pending.clear()
    done = world.deliver(event)
    # Then the finished part was reused (not recomputed) and results equal a clean single pass
    assert done.status == "done" and done.parts == 3
    clean = World(settings, uploads_part_records=3)
    clean.deliver(clean.upload("uploads/b.jsonl", lines(10), **LABEL_META))
    assert world.objects.get("results/b.jsonl.jsonl") == clean.objects.get("results/b.jsonl.jsonl")


# -------------------------------------------------------------------------------------- checkpoint
def test_small_budget_continues_from_checkpoints_and_equals_a_single_pass(settings: Settings) -> None:
    # Given a CSV of 50 records (multi-line quoted texts, some bad rows) and parts of 7 records
    header = b"id,text\r\n"
    body = b"".join(
        (f'{i},"invoice billing\r\nnumber {i}"\r\n' if i % 9 else f"{i},bad,row\r\n").encode()
        for i in range(50)
    )
    single = World(settings, uploads_part_records=7)
    single.deliver(single.upload("uploads/t.csv", header + body, **LABEL_META))
    # When the same file runs with a budget that allows one part per invocation
    chunked = World(settings, uploads_part_records=7, uploads_safety_margin_ms=1000)
    outcome = chunked.deliver(chunked.upload("uploads/t.csv", header + body, **LABEL_META), lambda: 1000)
    # Then it took one invocation per part, each continuing from the previous checkpoint
    assert outcome.status == "done"
    assert len(chunked.queue.sent) == 7  # 8 parts
    assert [c.part for c in chunked.queue.sent] == list(range(1, 8))
    assert all(c.columns == ["id", "text"] for c in chunked.queue.sent)
    assert [c.cursor.index for c in chunked.queue.sent] == [7 * k for k in range(1, 8)]
    # And the results equal the single pass, byte for byte
    assert chunked.objects.get("results/t.csv.jsonl") == single.objects.get("results/t.csv.jsonl")
    summary = chunked.summary("uploads/t.csv")
    assert summary["parts"] == 8 and summary["invocations"] == 8
    assert summary["rejected_count"] == 6 and [r["line"] for r in summary["rejected"]][:2] == [2, 19]
    # And the reader was opened at each checkpoint's byte offset, not from the start
    offsets = [offset for _, offset in chunked.objects.reads]
    assert offsets == [0] + [c.cursor.offset for c in chunked.queue.sent]


def test_file_replaced_mid_job_stops_without_results(settings: Settings) -> None:
    # Given a job that continues in a follow-up message
    world = World(settings, uploads_part_records=2, uploads_safety_margin_ms=0)
    event = world.upload("uploads/c.jsonl", lines(6), **LABEL_META)
    assert world.jobs.start(event, lambda: 0).status == "continued"
    # When a new version is uploaded before the follow-up runs
    world.upload("uploads/c.jsonl", lines(3), **LABEL_META)
    (checkpoint,) = world.queue.drain()
    outcome = world.jobs.resume(checkpoint, unlimited)
    # Then the old job stops (the new version has its own event) and leaves no parts
    assert outcome.status == "stale"
    assert world.objects.keys("results/") == []


def test_job_needing_more_continuations_than_the_hop_cap_fails_with_a_recorded_error(
    settings: Settings,
) -> None:
    # Given parts of 2 records, one part per invocation, and at most 3 follow-up messages per job
    world = World(settings, uploads_part_records=2, uploads_safety_margin_ms=1000, uploads_max_hops=3)
    # When a 10-record file (5 parts: 4 follow-ups) is processed
    outcome = world.deliver(world.upload("uploads/long.jsonl", lines(10), **LABEL_META), lambda: 1000)
    # Then the job stops after the 3 follow-ups it may send, instead of sending a 4th
    assert outcome.status == "error"
    assert [c.hops for c in world.queue.sent] == [1, 2, 3]
    # And errors/<path>.json records why, with the cap and the setting that raises it
    error = world.error("uploads/long.jsonl")
    assert error["code"] == "UPLOAD_TOO_MANY_CONTINUATIONS"
    assert "3 follow-up" in error["message"] and "LABELWISE_UPLOADS_MAX_HOPS" in error["message"]
    # And no results, summary or parts are left
    assert world.objects.keys("results/") == []


def test_job_within_the_hop_cap_completes(settings: Settings) -> None:
    # Given the same cap of 3 follow-up messages
    world = World(settings, uploads_part_records=2, uploads_safety_margin_ms=1000, uploads_max_hops=3)
    # When an 8-record file (4 parts: exactly 3 follow-ups) is processed
    outcome = world.deliver(world.upload("uploads/ok.jsonl", lines(8), **LABEL_META), lambda: 1000)
    # Then it completes normally
    assert outcome.status == "done"
    assert world.summary("uploads/ok.jsonl")["invocations"] == 4
    assert world.objects.get("errors/ok.jsonl.json") is None


def test_checkpoint_already_past_the_hop_cap_fails(settings: Settings) -> None:
    # Given a follow-up sent under a higher cap (3), then the cap lowered to 1
    world = World(settings, uploads_part_records=2, uploads_safety_margin_ms=1000, uploads_max_hops=3)
    event = world.upload("uploads/late.jsonl", lines(10), **LABEL_META)
    world.jobs.start(event, lambda: 1000)
    (first,) = world.queue.drain()
    world.jobs.resume(first, lambda: 1000)
    (second,) = world.queue.drain()
    assert second.hops == 2
    lowered = World(settings, uploads_part_records=2, uploads_safety_margin_ms=1000, uploads_max_hops=1)
    lowered.objects = world.objects
    lowered.jobs = UploadJobs(lowered.services, world.objects, lowered.queue, bucket=BUCKET)
    # When that checkpoint is delivered
    outcome = lowered.jobs.resume(second, unlimited)
    # Then it fails at once with the recorded error, and nothing more is sent or left
    assert outcome.status == "error"
    assert lowered.queue.sent == []
    assert lowered.error("uploads/late.jsonl")["code"] == "UPLOAD_TOO_MANY_CONTINUATIONS"
    assert world.objects.keys("results/") == []


# -------------------------------------------------------------------------------------- few-shot
def test_few_shot_by_path_convention_with_the_uploaders_key(settings: Settings) -> None:
    # Given a classifier trained by a key, and an upload under uploads/<classifier id>/ naming that key
    world = World(settings)
    _, owner = world.services.keys.create("tenant-a", "owner")
    trained = fewshot.train(
        world.services.registry, world.services.store, world.services.settings, owner,
        examples=[("invoice billing charge", "billing"), ("login password reset", "account")] * 3,
    )  # fmt: skip
    key = f"uploads/{trained.classifier_id}/export.txt"
    event = world.upload(
        key, b"my invoice billing charge\npassword login fails\n", **{"api-key-id": owner.key_id}
    )
    # When it is processed
    outcome = world.deliver(event)
    # Then the classifier's labels are predicted and the summary records its version
    assert outcome.status == "done", outcome.detail
    assert [r["prediction"] for r in world.results(key)] == ["billing", "account"]
    summary = world.summary(key)
    assert (summary["classifier_id"], summary["classifier_version"]) == (trained.classifier_id, 1)


def test_classifier_of_another_tenant_is_an_error_file(settings: Settings) -> None:
    # Given a private classifier of tenant A and an upload by a key of tenant B
    world = World(settings)
    _, owner = world.services.keys.create("tenant-a", "owner")
    _, other = world.services.keys.create("tenant-b", "other")
    trained = fewshot.train(
        world.services.registry, world.services.store, world.services.settings, owner,
        examples=[("invoice", "billing"), ("password", "account")],
    )  # fmt: skip
    event = world.upload(
        "uploads/x.txt", b"invoice\n", **{"classifier-id": trained.classifier_id, "api-key-id": other.key_id}
    )
    # When it is processed
    outcome = world.deliver(event)
    # Then errors/<path>.json explains it, and no results exist
    assert outcome.status == "error"
    error = world.error("uploads/x.txt")
    assert error["code"] == "UPLOAD_UNUSABLE" and "not usable by key" in error["message"]
    assert world.objects.keys("results/") == []


def test_public_classifier_is_usable_without_a_key(settings: Settings) -> None:
    world = World(settings)
    _, owner = world.services.keys.create("tenant-a", "owner")
    trained = fewshot.train(
        world.services.registry, world.services.store, world.services.settings, owner,
        examples=[("invoice", "billing"), ("password", "account")], access="public",
    )  # fmt: skip
    event = world.upload("uploads/p.txt", b"invoice\n", **{"classifier-id": trained.classifier_id})
    assert world.deliver(event).status == "done"


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("key", "metadata", "code", "message"),
    [
        ("uploads/a.xlsx", LABEL_META, "UPLOAD_UNUSABLE", "Unknown file format"),
        ("uploads/a.jsonl", {}, "UPLOAD_UNUSABLE", "No classification configured"),
        ("uploads/a.jsonl", {"labels": "[]"}, "INPUT_INVALID_LABELS", "at least one label"),
        ("uploads/a.jsonl", {**LABEL_META, "model": "nope"}, "INPUT_MODEL_NOT_FOUND", "nope"),
        ("uploads/a.jsonl", {**LABEL_META, "api-key-id": "key_unknown"}, "UPLOAD_UNUSABLE", "not an active"),
        ("uploads/nope/a.jsonl", {}, "UPLOAD_UNUSABLE", "Classifier 'nope' does not exist"),
        ("uploads/a.csv", LABEL_META, "UPLOAD_UNUSABLE", "no `text` column"),
    ],
)
def test_unusable_files_get_an_error_document(
    settings: Settings, key: str, metadata: dict[str, str], code: str, message: str
) -> None:
    # Given an upload that cannot be used at all
    world = World(settings)
    event = world.upload(key, b"id,body\n1,x\n" if key.endswith(".csv") else b'{"text": "x"}\n', **metadata)
    # When it is processed
    outcome = world.deliver(event)
    # Then errors/<path>.json has the code and a clear message, and the message is not retried
    assert outcome.status == "error"
    error = world.error(key)
    assert error["code"] == code and message in error["message"]
    assert error["source"]["key"] == key


def test_fixed_upload_replaces_the_error_with_results(settings: Settings) -> None:
    world = World(settings)
    world.deliver(world.upload("uploads/a.jsonl", b'{"text": "x"}\n'))
    assert world.objects.get("errors/a.jsonl.json") is not None
    world.deliver(world.upload("uploads/a.jsonl", b'{"text": "x"}\n', **LABEL_META))
    assert world.objects.get("errors/a.jsonl.json") is None
    assert len(world.results("uploads/a.jsonl")) == 1


# ------------------------------------------------------------------------------------------ events
def test_s3_event_message_with_url_encoded_key(settings: Settings) -> None:
    # Given an object whose key has spaces and non-ASCII characters
    world = World(settings)
    key = "uploads/équipe support/mes tickets+1.txt"
    info = world.objects.upload(key, b"invoice billing\n", LABEL_META)
    # When the S3 notification (key URL-encoded as S3 does) arrives as a queue message
    encoded = "uploads/%C3%A9quipe+support/mes+tickets%2B1.txt"
    body = json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:Put",
                    "s3": {
                        "bucket": {"name": BUCKET},
                        "object": {"key": encoded, "eTag": info.etag, "versionId": info.version_id},
                    },
                }
            ]
        }
    )
    (outcome,) = world.jobs.handle_message(body, unlimited)
    # Then the decoded key is processed and results keep its path
    assert outcome.status == "done", outcome.detail
    assert world.objects.get("results/équipe support/mes tickets+1.txt.jsonl") is not None


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"Event": "s3:TestEvent", "Bucket": BUCKET}, "S3 test event"),
        (
            {
                "Records": [
                    {
                        "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": "other"}, "object": {"key": "uploads/a.txt"}},
                    }
                ]
            },
            "bucket other is not bucket",
        ),
        (
            {
                "Records": [
                    {
                        "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": BUCKET}, "object": {"key": "results/a.txt.jsonl"}},
                    }
                ]
            },
            "not under uploads/",
        ),
        (
            {
                "Records": [
                    {
                        "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": BUCKET}, "object": {"key": "uploads/gone.txt"}},
                    }
                ]
            },
            "no longer exists",
        ),
    ],
)
def test_messages_that_need_no_work_are_ignored(
    settings: Settings, body: dict[str, Any], detail: str
) -> None:
    world = World(settings)
    (outcome,) = world.jobs.handle_message(json.dumps(body), unlimited)
    assert outcome.status == "ignored" and detail in outcome.detail
    assert world.objects.keys() == []


def test_malformed_message_raises_so_the_queue_keeps_it(settings: Settings) -> None:
    world = World(settings)
    with pytest.raises(ValueError):
        world.jobs.handle_message('{"unexpected": true, "Records": "nope"}', unlimited)


@pytest.mark.parametrize(
    ("bucket", "key", "detail"),
    [
        ("other-bucket", "uploads/team/a.jsonl", "bucket other-bucket is not bucket"),
        (BUCKET, "private/payroll.jsonl", "not under uploads/"),
        (BUCKET, "results/team/a.jsonl.jsonl", "not under uploads/"),
        (BUCKET, "uploads/", "not under uploads/"),
    ],
)
def test_checkpoint_for_another_bucket_or_outside_uploads_is_refused(
    settings: Settings, bucket: str, key: str, detail: str
) -> None:
    # Given an object in the bucket at that key, and a follow-up message naming it (another bucket,
    # or a key start() would never accept)
    world = World(settings)
    info = world.objects.upload(key, lines(3))
    checkpoint = Checkpoint(
        bucket=bucket, key=key, version_id=info.version_id, etag=info.etag, format="jsonl",
        config=UploadConfig(mode="zero-shot", labels=LABELS), started_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    body = json.dumps({CHECKPOINT_MESSAGE: checkpoint.model_dump(mode="json")})
    # When the message is handled
    (outcome,) = world.jobs.handle_message(body, unlimited)
    # Then it is refused with a recorded error, and nothing was read, classified or written
    assert outcome.status == "error" and detail in outcome.detail
    assert outcome.error is not None and outcome.error.code == "UPLOAD_CHECKPOINT_REFUSED"
    assert (outcome.parts, outcome.records_read) == (0, 0)
    assert world.objects.keys() == [key]
    assert world.queue.sent == []


def test_retrained_classifier_and_a_repeated_event_keep_the_version_pinned_at_the_start(
    settings: Settings,
) -> None:
    # Given a classifier at version 1 and a 6-record file for it, in parts of 2, one part per invocation
    world = World(settings, uploads_part_records=2, uploads_safety_margin_ms=1000)
    s = world.services
    _, owner = s.keys.create("tenant-a", "owner")
    examples = [("invoice billing charge", "billing"), ("login password reset", "account")]
    trained = fewshot.train(s.registry, s.store, s.settings, owner, examples=examples * 3)
    v1 = load_learner(s.store.load_weights(trained.classifier_id, 1), zero_shot_temperature=0.1)
    texts = ["my invoice billing charge", "password login fails"] * 3
    key = "uploads/pinned.txt"
    event = world.upload(
        key, "\n".join(texts).encode(), **{"classifier-id": trained.classifier_id, "api-key-id": owner.key_id}
    )
    # When the first part runs, the classifier is retrained twice (labels swapped: version 1 is no
    # longer stored), the same S3 event is delivered again, and then the follow-ups run
    assert world.jobs.start(event, lambda: 1000).status == "continued"
    swapped = [(text, "account" if label == "billing" else "billing") for text, label in examples]
    for _ in range(2):
        fewshot.train(
            s.registry, s.store, s.settings, owner, examples=swapped * 5, classifier_id=trained.classifier_id
        )
    outcome = world.deliver(event, lambda: 1000)  # the last follow-up finds the job finished
    # Then the file is done, the summary names version 1, and every row has version 1's scores
    assert outcome.status == "already-done", outcome.detail
    assert world.summary(key)["classifier_version"] == 1
    expected = v1.predict_proba(s.registry.get(None).embed(texts, "input").vectors)
    rows = world.results(key)
    assert [r["prediction"] for r in rows] == ["billing", "account"] * 3
    for row, probabilities in zip(rows, expected, strict=True):
        scores = {p["label"]: p["score"] for p in row["predictions"]}
        assert scores == pytest.approx(dict(zip(v1.labels, probabilities.tolist(), strict=True)), abs=1e-6)
    # And the job's snapshot of the weights went with its parts
    assert world.objects.keys("results/") == ["results/pinned.txt.jsonl", "results/pinned.txt.summary.json"]


def test_classifier_deleted_mid_file_fails_the_job_and_leaves_no_copy_of_its_weights(
    settings: Settings,
) -> None:
    # Given a 6-record file for a classifier, in parts of 2, one part per invocation
    world = World(settings, uploads_part_records=2, uploads_safety_margin_ms=1000)
    s = world.services
    _, owner = s.keys.create("tenant-a", "owner")
    examples = [("invoice billing charge", "billing"), ("login password reset", "account")]
    trained = fewshot.train(s.registry, s.store, s.settings, owner, examples=examples * 3)
    key = "uploads/deleted.txt"
    event = world.upload(
        key, b"invoice\nlogin\n" * 3, **{"classifier-id": trained.classifier_id, "api-key-id": owner.key_id}
    )
    # When the first part runs, then the owner deletes the classifier, then the follow-up runs
    assert world.jobs.start(event, lambda: 1000).status == "continued"
    assert any(k.endswith("/classifier.weights") for k in world.objects.keys("results/"))
    fewshot.delete_classifier(s.store, owner, trained.classifier_id)
    outcome = world.deliver_pending(lambda: 1000)
    # Then the job fails with an error document, and neither its parts nor the snapshot of the
    # deleted classifier's weights are left
    assert outcome.status == "error" and "does not exist" in outcome.detail
    assert world.error(key)["code"] == "UPLOAD_UNUSABLE"
    assert world.objects.keys("results/") == []
