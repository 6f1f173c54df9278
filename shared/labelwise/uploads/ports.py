"""Ports of the upload runner: where files come from and results go (:class:`ObjectStore`), and where a
checkpoint goes when a file does not fit one invocation (:class:`ContinuationQueue`).

Adapters: :mod:`labelwise.uploads.aws` (S3, SQS), :mod:`labelwise.uploads.objects` (local directory,
in memory, an in-process queue). Provider errors become :class:`labelwise.errors.StoreUnavailable`
(transient: the message is retried, then dead-lettered); a missing object is ``None``, never an error.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from labelwise.errors import LabelwiseError
from labelwise.uploads.models import Checkpoint
from labelwise.uploads.readers import ReadFn


class ObjectChanged(LabelwiseError):
    """The object version a job reads was replaced or deleted: the job is stale (a newer upload has
    its own event), so it stops without writing results."""

    code = "UPLOAD_OBJECT_CHANGED"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    version_id: str | None  # S3 version id (versioned bucket), else None
    etag: str | None  # without quotes
    size: int
    metadata: Mapping[str, str] = field(default_factory=dict)  # user metadata, lower-case names

    @property
    def token(self) -> str:
        """Identifies this content of the key: the version id, else the ETag."""
        return self.version_id or self.etag or "unversioned"


class ObjectStore(ABC):
    """Objects by key (``uploads/...``, ``results/...``, ``errors/...``)."""

    @abstractmethod
    def head(self, key: str, version_id: str | None = None) -> ObjectInfo | None:
        """The object's (or that version's) info, or None if there is no such object (version)."""

    @abstractmethod
    def open(self, info: ObjectInfo, offset: int) -> contextlib.AbstractContextManager[ReadFn]:
        """Read ``info``'s exact content from byte ``offset``; raises :class:`ObjectChanged` when
        that content is no longer the one stored."""

    @abstractmethod
    def get(self, key: str) -> bytes | None:
        """A (small) object's bytes, or None if absent."""

    @abstractmethod
    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write (overwrite) a small object."""

    @abstractmethod
    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> None:
        """Write (overwrite) an object from chunks, holding a bounded amount in memory. Readers see
        the old object or the complete new one, never a partial one."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete objects; absent ones are ignored."""


class ContinuationQueue(ABC):
    """Where the follow-up message of a file that needs another invocation goes."""

    @abstractmethod
    def send(self, checkpoint: Checkpoint) -> None:
        """Enqueue ``checkpoint`` (at least once)."""


class InlineQueue(ContinuationQueue):
    """Checkpoints kept in process: the local runner drains it (and tests inspect it)."""

    def __init__(self) -> None:
        self.pending: list[Checkpoint] = []
        self.sent: list[Checkpoint] = []

    def send(self, checkpoint: Checkpoint) -> None:
        self.pending.append(checkpoint)
        self.sent.append(checkpoint)

    def drain(self) -> Iterator[Checkpoint]:
        while self.pending:
            yield self.pending.pop(0)
