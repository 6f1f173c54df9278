"""The upload job runner: one uploaded file in, ``results/`` (or ``errors/``) out.

A file is processed in **parts** of ``uploads_part_records`` records. Part boundaries depend only on
the file (never on timing), so every delivery of the same event computes the same parts:

* part ``n`` is written to ``<parts>/<n>.jsonl`` and then ``<parts>/<n>.json`` (its counters, rejected
  lines, and the cursor after it); the ``.json`` marks the part complete, and a later delivery that
  finds it skips the part;
* after each part the runner checks the invocation's remaining time (``budget()``, with
  ``uploads_safety_margin_ms`` in reserve, against the slowest part so far); when another part may not
  fit it sends a :class:`~labelwise.uploads.models.Checkpoint` (object key, version id / ETag, byte
  offset, line, next part number) to the :class:`~labelwise.uploads.ports.ContinuationQueue` and stops;
* after the final part the parts are concatenated into ``results/<path>.jsonl``, then
  ``results/<path>.summary.json`` is written (it marks the file done for this object version), then
  the parts are deleted.

Idempotency: every key written is a function of (object key, object version, part number) and every
part's content a function of the file, so a repeated event or checkpoint rewrites identical bytes, and
an event for an object version whose summary exists does nothing. A job whose object was replaced
meanwhile stops without writing results (the new version has its own event).

Errors: a file that cannot be used at all (unknown format, no or bad configuration, a classifier the
uploader may not use, a CSV without ``text``) gets ``errors/<path>.json`` and the message succeeds;
anything transient (:class:`~labelwise.errors.ServiceUnavailable`, unexpected exceptions) propagates
so the queue retries and finally dead-letters the message.

Pinned classifier: a few-shot job scores the whole file with the classifier version current when it
started; its weights are snapshotted beside the parts (``classifier.weights`` / ``classifier.json``),
and the checkpoint and summary carry that ``classifier_version``.

A follow-up message for another bucket or a key outside ``uploads/`` is refused, as ``start`` ignores
such events.

Hop cap: each checkpoint carries ``hops``, the follow-up messages sent so far. A job that would send
more than ``uploads_max_hops`` (or receives a checkpoint already past it) stops with
``errors/<path>.json`` (``UPLOAD_TOO_MANY_CONTINUATIONS``) and deletes its parts, so the
SQS -> Lambda -> SQS chain (``RecursiveLoop: Allow`` in template.yaml) always ends.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import ValidationError

from labelwise.errors import (
    InvalidInput,
    LabelwiseError,
    ResourceNotFound,
    StoreUnavailable,
    Unauthenticated,
)
from labelwise.services import Services
from labelwise.storage.ports import utcnow
from labelwise.uploads.classifying import FewShotPlan, Plan, config_from_upload, prepare, resolve_caller
from labelwise.uploads.models import (
    CHECKPOINT_MESSAGE,
    Checkpoint,
    Cursor,
    ErrorDocument,
    PartMeta,
    PinnedClassifier,
    RejectedLine,
    S3Notification,
    SourceInfo,
    Summary,
    UploadConfig,
    UploadEvent,
)
from labelwise.uploads.ports import ContinuationQueue, ObjectChanged, ObjectInfo, ObjectStore
from labelwise.uploads.readers import Header, Record, Rejected, format_for, read_items

logger = logging.getLogger(__name__)

UPLOADS_PREFIX = "uploads/"
RESULTS_PREFIX = "results/"
ERRORS_PREFIX = "errors/"
#: Beside a job's parts: the snapshot of the classifier version it pinned, and its record.
PIN_WEIGHTS = "classifier.weights"
PIN_RECORD = "classifier.json"

#: Remaining milliseconds of the current invocation (``context.get_remaining_time_in_millis``).
Budget = Callable[[], int]


def unlimited() -> int:
    """A budget that never runs out (local runs)."""
    return 2**62


class TooManyContinuations(InvalidInput):
    """The file needed more follow-up messages than ``uploads_max_hops``: the job stops with
    ``errors/<path>.json`` instead of chaining through the queue without end."""

    code = "UPLOAD_TOO_MANY_CONTINUATIONS"


class CheckpointRefused(InvalidInput):
    """A follow-up message names another bucket or a key outside ``uploads/``: :meth:`UploadJobs.start`
    would never have started that job, so :meth:`UploadJobs.resume` refuses it (nothing is read or
    written; the outcome and a warning record it)."""

    code = "UPLOAD_CHECKPOINT_REFUSED"


#: Errors that make a file unusable (reported in errors/, not retried).
PERMANENT_ERRORS = (InvalidInput, ResourceNotFound, Unauthenticated)

Status = Literal["done", "continued", "already-done", "error", "ignored", "stale"]


@dataclass(frozen=True)
class OutputLayout:
    """Where a file's outputs go. ``bucket``: ``uploads/<p>`` -> ``results/<p>.jsonl``,
    ``results/<p>.summary.json``, ``errors/<p>.json``; ``beside`` (local files): ``<p>.results.jsonl``,
    ``<p>.summary.json``, ``<p>.error.json``. Parts live under ``<results>.parts/<version>/``."""

    kind: Literal["bucket", "beside"] = "bucket"

    def _rel(self, key: str) -> str:
        return key[len(UPLOADS_PREFIX) :] if key.startswith(UPLOADS_PREFIX) else key

    def accepts(self, key: str) -> bool:
        return self.kind == "beside" or (key.startswith(UPLOADS_PREFIX) and not key.endswith("/"))

    def results(self, key: str) -> str:
        return f"{RESULTS_PREFIX}{self._rel(key)}.jsonl" if self.kind == "bucket" else f"{key}.results.jsonl"

    def summary(self, key: str) -> str:
        return (
            f"{RESULTS_PREFIX}{self._rel(key)}.summary.json"
            if self.kind == "bucket"
            else f"{key}.summary.json"
        )

    def error(self, key: str) -> str:
        return f"{ERRORS_PREFIX}{self._rel(key)}.json" if self.kind == "bucket" else f"{key}.error.json"

    def parts(self, key: str, token: str) -> str:
        return f"{self.results(key)}.parts/{re.sub(r'[^A-Za-z0-9._-]', '_', token)}/"


BUCKET_LAYOUT = OutputLayout("bucket")
BESIDE_LAYOUT = OutputLayout("beside")


@dataclass
class Outcome:
    """What handling one event or checkpoint did (for logs, metrics and tests)."""

    status: Status
    key: str
    detail: str = ""
    parts: int = 0  # parts processed in this invocation
    records_read: int = 0  # in this invocation
    classified: int = 0
    rejected: int = 0
    summary: Summary | None = None
    error: ErrorDocument | None = None
    checkpoint: Checkpoint | None = None


class _PartMissing(Exception):
    pass


def _dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class UploadJobs:
    """Runs upload jobs against an :class:`ObjectStore`, with the process's :class:`Services`."""

    services: Services
    objects: ObjectStore
    continuations: ContinuationQueue
    bucket: str | None = None  # events of other buckets are ignored
    layout: OutputLayout = BUCKET_LAYOUT
    clock: Callable[[], datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic

    @property
    def part_records(self) -> int:
        return self.services.settings.uploads_part_records

    @property
    def max_hops(self) -> int:
        return self.services.settings.uploads_max_hops

    @property
    def batch_size(self) -> int:
        s = self.services.settings
        return max(1, min(s.uploads_batch_size, s.max_inputs))

    # -- entry points ------------------------------------------------------------------------------

    def handle_message(self, body: str, budget: Budget) -> list[Outcome]:
        """Handle one queue message: an S3 event notification or a follow-up checkpoint. Raises on
        malformed messages (kept by the dead-letter queue) and transient failures (retried)."""
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("upload message is not a JSON object")
        if CHECKPOINT_MESSAGE in data:
            return [self.resume(Checkpoint.model_validate(data[CHECKPOINT_MESSAGE]), budget)]
        if data.get("Event") == "s3:TestEvent":
            return [Outcome("ignored", "", "S3 test event")]
        try:
            notification = S3Notification.model_validate(data)
        except ValidationError as exc:
            raise ValueError(f"not an S3 event notification: {exc.error_count()} errors") from exc
        outcomes = []
        for record in notification.Records:
            event = UploadEvent.from_record(record)
            if record.eventSource != "aws:s3" or not record.eventName.startswith("ObjectCreated"):
                outcomes.append(Outcome("ignored", event.key, f"event {record.eventName}"))
                continue
            outcomes.append(self.start(event, budget))
        return outcomes

    def start(self, event: UploadEvent, budget: Budget, config: UploadConfig | None = None) -> Outcome:
        """Start (or, for a repeated event, re-check) the job of one uploaded object version.
        ``config`` overrides the object's metadata (the local command)."""
        key = event.key
        if self.bucket is not None and event.bucket != self.bucket:
            return Outcome("ignored", key, f"bucket {event.bucket} is not {self.bucket}")
        if not self.layout.accepts(key):
            return Outcome("ignored", key, f"not under {UPLOADS_PREFIX}")
        info = self.objects.head(key, event.version_id)
        latest = self.objects.head(key) if event.version_id else info
        if info is None or latest is None:
            return Outcome("ignored", key, "the object no longer exists")
        if latest.token != info.token or (event.version_id is None and event.etag not in (None, info.etag)):
            return Outcome("stale", key, "a newer version of the object exists")
        source = SourceInfo(bucket=event.bucket, key=key, version_id=info.version_id, etag=info.etag)
        try:
            fmt = format_for(key)
            source = source.model_copy(update={"format": fmt})
            config = config or config_from_upload(key, info.metadata, UPLOADS_PREFIX)
            if self._done(info, config):
                return Outcome("already-done", key, "results exist for this object version")
            plan = prepare(self.services, config, resolve_caller(self.services, config))
        except PERMANENT_ERRORS as exc:
            return self._fail(info, source, exc)
        checkpoint = Checkpoint(
            bucket=event.bucket,
            key=key,
            version_id=info.version_id,
            etag=info.etag,
            format=fmt,
            config=config,
            started_at=self.clock(),
        )
        return self._run(checkpoint, info, plan, budget)

    def resume(self, checkpoint: Checkpoint, budget: Budget) -> Outcome:
        """Continue a job from a follow-up message (refused, as :meth:`start` would ignore its event,
        when it names another bucket or a key outside ``uploads/``)."""
        key = checkpoint.key
        if self.bucket is not None and checkpoint.bucket != self.bucket:
            return self._refuse(checkpoint, f"bucket {checkpoint.bucket} is not {self.bucket}")
        if not self.layout.accepts(key):
            return self._refuse(checkpoint, f"key {key!r} is not under {UPLOADS_PREFIX}")
        info = self.objects.head(key, checkpoint.version_id)
        if info is None or info.etag != checkpoint.etag:
            token = f"{checkpoint.version_id or checkpoint.etag}.{checkpoint.config.digest}"
            self._delete_parts(key, token, upto=checkpoint.part)
            return Outcome("stale", key, "the object version of this checkpoint is gone")
        if self._done(info, checkpoint.config):
            return Outcome("already-done", key, "results exist for this object version")
        if checkpoint.hops > self.max_hops:  # sent under a higher cap (or forged): stop here too
            return self._too_many_hops(checkpoint, info, f"{info.token}.{checkpoint.config.digest}")
        try:
            plan = prepare(self.services, checkpoint.config, resolve_caller(self.services, checkpoint.config))
        except PERMANENT_ERRORS as exc:  # e.g. the classifier was deleted: drop the job's parts too
            self._delete_parts(key, f"{info.token}.{checkpoint.config.digest}", upto=checkpoint.part)
            return self._fail(info, self._source(checkpoint), exc)
        return self._run(checkpoint, info, plan, budget)

    # -- the loop ----------------------------------------------------------------------------------

    def _run(self, checkpoint: Checkpoint, info: ObjectInfo, plan: Plan, budget: Budget) -> Outcome:
        token = f"{info.token}.{checkpoint.config.digest}"  # parts are per object version and config
        margin = self.services.settings.uploads_safety_margin_ms
        outcome = Outcome("continued", checkpoint.key)
        slowest_ms = 0
        try:
            checkpoint = self._pin(checkpoint, token, plan)
            while True:
                meta = self._read_meta(info.key, token, checkpoint.part)
                if meta is None:
                    if outcome.parts and budget() - margin <= slowest_ms:  # another part may not fit
                        if checkpoint.hops >= self.max_hops:
                            return self._too_many_hops(checkpoint, info, token)
                        follow_up = checkpoint.model_copy(update={"hops": checkpoint.hops + 1})
                        self.continuations.send(follow_up)
                        outcome.checkpoint = follow_up
                        outcome.detail = f"continues at part {follow_up.part}, line {follow_up.cursor.line}"
                        return outcome
                    meta = self._run_part(checkpoint, info, token, plan)
                    slowest_ms = max(slowest_ms, meta.elapsed_ms)
                    outcome.parts += 1
                    outcome.records_read += meta.records_read
                    outcome.classified += meta.classified
                    outcome.rejected += meta.rejected_count
                if meta.final:
                    return self._finish(checkpoint, info, token, outcome)
                checkpoint = checkpoint.model_copy(
                    update={
                        "part": checkpoint.part + 1,
                        "cursor": meta.end,
                        "columns": meta.columns if meta.columns is not None else checkpoint.columns,
                    }
                )
        except ObjectChanged as exc:
            self._delete_parts(checkpoint.key, token, upto=checkpoint.part)
            return Outcome("stale", checkpoint.key, exc.detail)
        except PERMANENT_ERRORS as exc:  # the parts (and a classifier snapshot) are of no further use
            self._delete_parts(checkpoint.key, token, upto=checkpoint.part)
            return self._fail(info, self._source(checkpoint), exc)

    def _run_part(self, checkpoint: Checkpoint, info: ObjectInfo, token: str, plan: Plan) -> PartMeta:
        """Read and classify one part from ``checkpoint.cursor``; write its results, then its meta."""
        started = self.monotonic()
        plan.refresh()
        results = _PartResults(plan, self.batch_size)
        columns, end, read, final = checkpoint.columns, checkpoint.cursor, 0, True
        max_line = self.services.settings.uploads_max_line_bytes
        with self.objects.open(info, checkpoint.cursor.offset) as read_fn:
            position = checkpoint.cursor.position()
            for item in read_items(checkpoint.format, read_fn, position, max_line, columns):
                if isinstance(item, Header):
                    columns = list(item.columns)
                    end = Cursor.of(item.end)
                    continue
                if read == self.part_records:
                    final = False  # there is at least one more record: another part follows
                    break
                read += 1
                end = Cursor.of(item.end)
                if isinstance(item, Rejected):
                    results.rejected.append(
                        RejectedLine(line=item.line, index=item.index, reason=item.reason)
                    )
                    continue
                results.add(item)
            results.flush()
        meta = PartMeta(
            part=checkpoint.part,
            start=checkpoint.cursor,
            end=end,
            final=final,
            columns=columns,
            records_read=read,
            classified=results.classified,
            rejected_count=len(results.rejected),
            rejected=results.rejected,
            total_tokens=results.tokens,
            truncated=results.truncated,
            model=plan.model,
            classifier_version=plan.classifier_version,
            elapsed_ms=int((self.monotonic() - started) * 1000),
        )
        self._write_part(checkpoint, token, results.lines, meta)
        return meta

    def _write_part(self, checkpoint: Checkpoint, token: str, lines: list[bytes], meta: PartMeta) -> None:
        """A part's result lines, then its meta (whose presence says the part is complete)."""
        prefix = self.layout.parts(checkpoint.key, token)
        self.objects.put(f"{prefix}{checkpoint.part:06d}.jsonl", b"".join(lines), "application/x-ndjson")
        self.objects.put(
            f"{prefix}{checkpoint.part:06d}.json", meta.model_dump_json().encode(), "application/json"
        )

    # -- finishing ---------------------------------------------------------------------------------

    def _finish(self, checkpoint: Checkpoint, info: ObjectInfo, token: str, outcome: Outcome) -> Outcome:
        key = checkpoint.key
        latest = self.objects.head(key)
        if latest is None or latest.token != info.token:
            self._delete_parts(key, token, upto=checkpoint.part)
            return Outcome("stale", key, "a newer version of the object exists; results not written")
        count = checkpoint.part + 1
        prefix = self.layout.parts(key, token)
        try:
            self.objects.put_stream(
                self.layout.results(key), self._part_bodies(prefix, count), "application/x-ndjson"
            )
            summary = self._summary(checkpoint, token, count)
        except _PartMissing:
            if self._done(info, checkpoint.config):  # a concurrent delivery finished (and cleaned up) first
                return Outcome("already-done", key, "finished by a concurrent delivery")
            raise
        self.objects.put(
            self.layout.summary(key), summary.model_dump_json(indent=2).encode(), "application/json"
        )
        self.objects.delete([self.layout.error(key)])
        self._delete_parts(key, token, upto=checkpoint.part)
        outcome.status = "done"
        outcome.summary = summary
        outcome.detail = f"{summary.classified} classified, {summary.rejected_count} rejected"
        return outcome

    def _part_bodies(self, prefix: str, count: int) -> Iterator[bytes]:
        for part in range(count):
            body = self.objects.get(f"{prefix}{part:06d}.jsonl")
            if body is None:
                raise _PartMissing(part)
            yield body

    def _summary(self, checkpoint: Checkpoint, token: str, count: int) -> Summary:
        cap = self.services.settings.uploads_max_reported_rejections
        read = classified = rejected_count = tokens = truncated = elapsed = 0
        rejected: list[RejectedLine] = []
        model: str | None = None
        version: int | None = None
        for part in range(count):
            meta = self._read_meta(checkpoint.key, token, part)
            if meta is None:
                raise _PartMissing(part)
            read += meta.records_read
            classified += meta.classified
            rejected_count += meta.rejected_count
            rejected.extend(meta.rejected[: max(0, cap - len(rejected))])
            tokens += meta.total_tokens
            truncated += meta.truncated
            elapsed += meta.elapsed_ms
            model = meta.model or model
            version = meta.classifier_version if meta.classifier_version is not None else version
        if checkpoint.classifier_version is not None:
            version = checkpoint.classifier_version  # pinned at the start: every part used it
        finished = self.clock()
        config = checkpoint.config
        return Summary(
            source=self._source(checkpoint),
            results=self.layout.results(checkpoint.key),
            records_read=read,
            classified=classified,
            rejected_count=rejected_count,
            rejected=rejected,
            rejected_truncated=rejected_count > len(rejected),
            truncated_inputs=truncated,
            mode=config.mode,
            model=model,
            labels=config.labels,
            classifier_id=config.classifier_id,
            classifier_version=version,
            total_tokens=tokens,
            parts=count,
            invocations=checkpoint.hops + 1,
            started_at=checkpoint.started_at,
            finished_at=finished,
            duration_ms=max(0, int((finished - checkpoint.started_at).total_seconds() * 1000)),
            processing_ms=elapsed,
            records_per_second=round(read / (elapsed / 1000), 1) if elapsed else 0.0,
        )

    def _fail(self, info: ObjectInfo, source: SourceInfo, exc: LabelwiseError) -> Outcome:
        """Report a file that cannot be used: ``errors/<path>.json``; earlier results of the key go."""
        document = ErrorDocument(source=source, code=exc.code, message=exc.detail, at=self.clock())
        key = info.key
        self.objects.put(
            self.layout.error(key), document.model_dump_json(indent=2).encode(), "application/json"
        )
        self.objects.delete([self.layout.results(key), self.layout.summary(key)])
        logger.info("upload %s is unusable: %s", key, exc.detail)
        return Outcome("error", key, exc.detail, error=document)

    def _refuse(self, checkpoint: Checkpoint, why: str) -> Outcome:
        """A follow-up message that :meth:`start` would not have produced: nothing is read or written
        (no ``errors/`` document either: the key is not one of ours); the message succeeds."""
        error = CheckpointRefused(f"Follow-up message refused: {why}.")
        document = ErrorDocument(
            source=self._source(checkpoint), code=error.code, message=error.detail, at=self.clock()
        )
        logger.warning("upload follow-up refused for %r: %s", checkpoint.key, why)
        return Outcome("error", checkpoint.key, error.detail, error=document)

    def _too_many_hops(self, checkpoint: Checkpoint, info: ObjectInfo, token: str) -> Outcome:
        """The hop cap: fail the job (errors/<path>.json, parts deleted) instead of continuing."""
        self._delete_parts(info.key, token, upto=checkpoint.part)
        error = TooManyContinuations(
            f"The file needs more than {self.max_hops} follow-up messages (continuations) to finish;"
            f" stopped before part {checkpoint.part} (line {checkpoint.cursor.line}) after"
            f" {checkpoint.hops} follow-ups. Split the file, or raise LABELWISE_UPLOADS_MAX_HOPS"
            " (UploadsMaxContinuations) or LABELWISE_UPLOADS_PART_RECORDS."
        )
        logger.warning("upload %s stopped by the hop cap (%d follow-ups)", info.key, checkpoint.hops)
        return self._fail(info, self._source(checkpoint), error)

    # -- the pinned classifier version -------------------------------------------------------------

    def _pin(self, checkpoint: Checkpoint, token: str, plan: Plan) -> Checkpoint:
        """Few-shot: score the whole file with one classifier version. The first delivery snapshots
        the current version's weights beside the parts (``classifier.weights``, then
        ``classifier.json``: the store keeps only the last two versions, so a long file could outlive
        its version there); every later delivery or follow-up loads that snapshot. Returns the
        checkpoint with ``classifier_version`` set."""
        if not isinstance(plan, FewShotPlan):
            return checkpoint
        prefix = self.layout.parts(checkpoint.key, token)
        pinned = self._read_pin(prefix)
        if pinned is None:
            if checkpoint.classifier_version is None:
                version, weights = plan.current_weights()
            else:  # resumed without a snapshot (deleted meanwhile): the store may still keep it
                version = checkpoint.classifier_version
                weights = plan.weights_of(version)
            record = PinnedClassifier(
                classifier_id=plan.classifier_id,
                version=version,
                sha256=hashlib.sha256(weights).hexdigest(),
                size=len(weights),
            )
            self.objects.put(f"{prefix}{PIN_WEIGHTS}", weights, "application/octet-stream")
            self.objects.put(f"{prefix}{PIN_RECORD}", record.model_dump_json().encode(), "application/json")
            pinned = self._read_pin(prefix)  # a concurrent first delivery may have pinned first
            if pinned is None:
                raise StoreUnavailable("The pinned classifier snapshot could not be read back.")
        snapshot = self.objects.get(f"{prefix}{PIN_WEIGHTS}")
        if snapshot is None or hashlib.sha256(snapshot).hexdigest() != pinned.sha256:
            # being rewritten by a concurrent first delivery: transient, the redelivery finds it whole
            raise StoreUnavailable("The pinned classifier snapshot is incomplete.")
        if checkpoint.classifier_version not in (None, pinned.version):
            logger.warning(
                "upload %s: checkpoint names classifier version %s, the job's snapshot %s (used)",
                checkpoint.key, checkpoint.classifier_version, pinned.version,
            )  # fmt: skip
        plan.pin(pinned.version, snapshot)
        return checkpoint.model_copy(update={"classifier_version": pinned.version})

    def _read_pin(self, prefix: str) -> PinnedClassifier | None:
        body = self.objects.get(f"{prefix}{PIN_RECORD}")
        return None if body is None else PinnedClassifier.model_validate_json(body)

    # -- helpers -----------------------------------------------------------------------------------

    @staticmethod
    def _source(checkpoint: Checkpoint) -> SourceInfo:
        return SourceInfo(
            bucket=checkpoint.bucket,
            key=checkpoint.key,
            version_id=checkpoint.version_id,
            etag=checkpoint.etag,
            format=checkpoint.format,
            config_digest=checkpoint.config.digest,
        )

    def _read_meta(self, key: str, token: str, part: int) -> PartMeta | None:
        body = self.objects.get(f"{self.layout.parts(key, token)}{part:06d}.json")
        return None if body is None else PartMeta.model_validate_json(body)

    def _done(self, info: ObjectInfo, config: UploadConfig) -> bool:
        """Whether the summary of this object version and configuration exists."""
        body = self.objects.get(self.layout.summary(info.key))
        if body is None:
            return False
        try:
            source = Summary.model_validate_json(body).source
        except ValidationError:
            return False
        return (source.version_id, source.etag, source.config_digest) == (
            info.version_id,
            info.etag,
            config.digest,
        )

    def _delete_parts(self, key: str, token: str, upto: int) -> None:
        prefix = self.layout.parts(key, token)
        self.objects.delete(
            [f"{prefix}{part:06d}.{ext}" for part in range(upto + 1) for ext in ("jsonl", "json")]
            + [f"{prefix}{PIN_RECORD}", f"{prefix}{PIN_WEIGHTS}"]
        )


@dataclass
class _PartResults:
    """What one part has produced so far: result lines, rejected lines and counts. Records are
    classified ``batch_size`` at a time."""

    plan: Plan
    batch_size: int
    lines: list[bytes] = field(default_factory=list)
    rejected: list[RejectedLine] = field(default_factory=list)
    batch: list[Record] = field(default_factory=list)
    classified: int = 0
    tokens: int = 0
    truncated: int = 0

    def add(self, record: Record) -> None:
        self.batch.append(record)
        if len(self.batch) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Classify the pending records into result lines."""
        if not self.batch:
            return
        result = self.plan.classify([r.text for r in self.batch])
        for record, row in zip(self.batch, result.rows, strict=True):
            self.lines.append(
                _dumps({"index": record.index, "id": record.id, "line": record.line, **row}) + b"\n"
            )
        self.classified += len(self.batch)
        self.tokens += result.total_tokens
        self.truncated += result.truncated
        self.batch.clear()
