"""Messages and documents of the upload runner (pydantic): the job configuration, the checkpoint
carried by follow-up messages, the per-part record, the summary, and the S3 event it starts from."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field

from labelwise.uploads.readers import Format, Position

#: Key of the follow-up message body that carries a checkpoint (an S3 event has ``Records``).
CHECKPOINT_MESSAGE = "labelwise_upload_checkpoint"


class UploadConfig(BaseModel):
    """What to classify a file with, resolved once when the job starts (object metadata or path)."""

    model_config = ConfigDict(frozen=True)

    mode: Literal["zero-shot", "few-shot"]
    labels: list[str] | dict[str, list[str]] | None = None
    classifier_id: str | None = None
    model: str | None = Field(
        default=None, description="Canonical model name (zero-shot) or the requested one."
    )
    api_key_id: str | None = Field(default=None, description="Public id of the uploader's API key, if given.")
    source: Literal["metadata", "path", "cli"] = "metadata"

    @property
    def digest(self) -> str:
        """Short fingerprint: results are reused only for the same object version *and* config."""
        return hashlib.sha256(self.model_dump_json(exclude={"source"}).encode()).hexdigest()[:12]


class Cursor(BaseModel):
    """:class:`labelwise.uploads.readers.Position` as JSON."""

    model_config = ConfigDict(frozen=True)

    offset: int = Field(default=0, ge=0)
    line: int = Field(default=1, ge=1)
    index: int = Field(default=0, ge=0)

    @classmethod
    def of(cls, position: Position) -> Cursor:
        return cls(offset=position.offset, line=position.line, index=position.index)

    def position(self) -> Position:
        return Position(self.offset, self.line, self.index)


class Checkpoint(BaseModel):
    """Everything needed to continue a file in another invocation: which object version, where to
    read from, which results part comes next, and the configuration resolved at the start."""

    model_config = ConfigDict(frozen=True)

    v: Literal[1] = 1
    bucket: str | None = None
    key: str
    version_id: str | None = None
    etag: str | None = None
    format: Format
    part: int = Field(default=0, ge=0, description="Number of the next results part.")
    cursor: Cursor = Field(default_factory=lambda: Cursor())
    columns: list[str] | None = Field(default=None, description="CSV header, once read.")
    config: UploadConfig
    started_at: datetime
    hops: int = Field(default=0, ge=0, description="Follow-up messages so far.")
    classifier_version: int | None = Field(
        default=None,
        ge=1,
        description="Few-shot: the classifier version pinned when the job started; every part is"
        " scored with it (weights snapshotted beside the parts), whatever the current version.",
    )


class PinnedClassifier(BaseModel):
    """``<parts>/classifier.json``, written after ``<parts>/classifier.weights``: the classifier
    version a few-shot job pinned at its start, and a digest of the snapshotted weights."""

    classifier_id: str
    version: int = Field(ge=1)
    sha256: str
    size: int = Field(ge=0)


class RejectedLine(BaseModel):
    line: int
    index: int
    reason: str


class PartMeta(BaseModel):
    """Written after a part's results: its presence means the part is complete."""

    part: int
    start: Cursor
    end: Cursor
    final: bool
    columns: list[str] | None = None
    records_read: int = 0
    classified: int = 0
    rejected_count: int = 0
    rejected: list[RejectedLine] = Field(default_factory=list)
    total_tokens: int = 0
    truncated: int = 0
    model: str | None = None
    classifier_version: int | None = None
    elapsed_ms: int = 0


class SourceInfo(BaseModel):
    bucket: str | None = None
    key: str
    version_id: str | None = None
    etag: str | None = None
    format: Format | None = None
    config_digest: str | None = None


class Summary(BaseModel):
    """``results/<path>.summary.json``."""

    status: Literal["done"] = "done"
    source: SourceInfo
    results: str
    records_read: int
    classified: int
    rejected_count: int
    rejected: list[RejectedLine]
    rejected_truncated: bool
    truncated_inputs: int
    mode: Literal["zero-shot", "few-shot"]
    model: str | None
    labels: list[str] | dict[str, list[str]] | None = None
    classifier_id: str | None = None
    classifier_version: int | None = None
    total_tokens: int
    parts: int
    invocations: int
    started_at: datetime
    finished_at: datetime
    duration_ms: int = Field(description="From the first event to the summary (queue waits included).")
    processing_ms: int = Field(description="Time spent reading and classifying.")
    records_per_second: float = Field(description="records_read / processing time.")


class ErrorDocument(BaseModel):
    """``errors/<path>.json``: why a file could not be used at all."""

    status: Literal["error"] = "error"
    source: SourceInfo
    code: str
    message: str
    at: datetime


# -- S3 event notifications -------------------------------------------------------------------------


class _S3Object(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key: str
    size: int | None = None
    eTag: str | None = None
    versionId: str | None = None


class _S3Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str


class _S3Entity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    bucket: _S3Bucket
    object: _S3Object


class S3EventRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    eventSource: str = "aws:s3"
    eventName: str
    s3: _S3Entity


class S3Notification(BaseModel):
    model_config = ConfigDict(extra="ignore")

    Records: list[S3EventRecord] = Field(default_factory=list)


class UploadEvent(BaseModel):
    """One uploaded object, from an S3 notification record (key URL-decoded)."""

    model_config = ConfigDict(frozen=True)

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None

    @classmethod
    def from_record(cls, record: S3EventRecord) -> UploadEvent:
        obj = record.s3.object
        return cls(
            bucket=record.s3.bucket.name,
            key=unquote_plus(obj.key),  # S3 URL-encodes keys in events ("a b" -> "a+b")
            version_id=obj.versionId or None,
            etag=obj.eTag.strip('"') if obj.eTag else None,
        )
