"""AWS adapters of the upload ports: S3 objects (:class:`S3ObjectStore`) and the SQS queue that
carries follow-up checkpoints (:class:`SqsContinuationQueue`). botocore errors become
:class:`labelwise.errors.StoreUnavailable`; a missing object is ``None`` or :class:`ObjectChanged`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from labelwise.settings import Settings
from labelwise.storage.aws import CLIENT_CONFIG, provider_errors, s3_client
from labelwise.uploads.models import CHECKPOINT_MESSAGE, Checkpoint
from labelwise.uploads.ports import ContinuationQueue, ObjectChanged, ObjectInfo, ObjectStore
from labelwise.uploads.readers import ReadFn

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

T = TypeVar("T")

_MISSING = {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}
_CHANGED = _MISSING | {"412", "PreconditionFailed", "InvalidArgument", "400"}
#: Multipart part size of assembled results (S3's minimum is 5 MiB); also the memory held while writing.
PART_BYTES = 8 * 1024 * 1024
#: Longer reads than the default client's 5 s: a large upload streams for minutes.
STREAM_CONFIG = CLIENT_CONFIG.merge(Config(read_timeout=60))


class _Missing(Exception):
    """Raised inside :func:`_unless_missing` for an absent object."""


def _wrapped(
    what: str, special: Callable[[str], Exception | None] | None = None
) -> AbstractContextManager[None]:
    return provider_errors(what, "S3/SQS", special)


def _unless_missing(what: str, call: Callable[[], T]) -> T | None:
    """``call()``, or None when the object (or its version) does not exist."""
    try:
        with _wrapped(what, lambda code: _Missing() if code in _MISSING else None):
            return call()
    except _Missing:
        return None


def make_upload_clients(settings: Settings) -> tuple[S3Client, SQSClient]:
    endpoint = settings.aws_endpoint_url
    session = boto3.session.Session()
    s3 = s3_client(session, endpoint, STREAM_CONFIG)
    sqs = session.client("sqs", endpoint_url=endpoint, config=CLIENT_CONFIG)
    return s3, sqs


def _empty_read(n: int = -1) -> bytes:
    return b""


class S3ObjectStore(ObjectStore):
    def __init__(self, bucket: str, *, s3: S3Client) -> None:
        self.bucket = bucket
        self._s3 = s3

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo | None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            kwargs["VersionId"] = version_id
        response = _unless_missing(f"read {key}", lambda: self._s3.head_object(**kwargs))
        if response is None:
            return None
        found_version = response.get("VersionId")
        return ObjectInfo(
            key=key,
            version_id=None if found_version in (None, "null") else found_version,
            etag=str(response.get("ETag", "")).strip('"') or None,
            size=int(response.get("ContentLength", 0)),
            metadata={k.lower(): v for k, v in response.get("Metadata", {}).items()},
        )

    @contextlib.contextmanager
    def open(self, info: ObjectInfo, offset: int) -> Iterator[ReadFn]:
        if offset >= info.size:
            yield _empty_read
            return
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": info.key}
        if info.version_id:
            kwargs["VersionId"] = info.version_id
        if info.etag:
            kwargs["IfMatch"] = f'"{info.etag}"'
        if offset:
            kwargs["Range"] = f"bytes={offset}-"
        changed = ObjectChanged(f"{info.key} changed or was deleted.")
        with _wrapped(f"read {info.key}", lambda code: changed if code in _CHANGED else None):
            body = self._s3.get_object(**kwargs)["Body"]

        def read(n: int = -1) -> bytes:
            with _wrapped(f"read {info.key}"):
                data: bytes = body.read(n)
                return data

        try:
            yield read
        finally:
            body.close()

    def get(self, key: str) -> bytes | None:
        data: bytes | None = _unless_missing(
            f"read {key}", lambda: self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        )
        return data

    def put(self, key: str, data: bytes, content_type: str) -> None:
        with _wrapped(f"write {key}"):
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> None:
        """One PutObject when it all fits in :data:`PART_BYTES`, else a multipart upload of
        :data:`PART_BYTES` parts (aborted on any failure, so no partial object is ever visible)."""
        buffer = bytearray()
        iterator = iter(chunks)
        for chunk in iterator:
            buffer += chunk
            if len(buffer) >= PART_BYTES:
                break
        else:
            self.put(key, bytes(buffer), content_type)
            return
        with _wrapped(f"start writing {key}"):
            upload_id = self._s3.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type
            )["UploadId"]
        parts: list[dict[str, Any]] = []
        try:

            def send(data: bytes) -> None:
                number = len(parts) + 1
                with _wrapped(f"write {key}"):
                    response = self._s3.upload_part(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data
                    )
                parts.append({"PartNumber": number, "ETag": response["ETag"]})

            for chunk in iterator:
                buffer += chunk
                while len(buffer) >= PART_BYTES:
                    send(bytes(buffer[:PART_BYTES]))
                    del buffer[:PART_BYTES]
            if buffer or not parts:
                send(bytes(buffer))
            with _wrapped(f"finish writing {key}"):
                self._s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                )
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError):
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def delete(self, keys: Iterable[str]) -> None:
        pending = list(keys)
        for start in range(0, len(pending), 1000):
            batch = [{"Key": k} for k in pending[start : start + 1000]]
            with _wrapped("delete objects"):
                self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})  # type: ignore[typeddict-item]


class SqsContinuationQueue(ContinuationQueue):
    def __init__(self, queue_url: str, *, sqs: SQSClient) -> None:
        self.queue_url = queue_url
        self._sqs = sqs

    def send(self, checkpoint: Checkpoint) -> None:
        body = json.dumps({CHECKPOINT_MESSAGE: checkpoint.model_dump(mode="json")}, separators=(",", ":"))
        with _wrapped("send a checkpoint"):
            self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=body)
