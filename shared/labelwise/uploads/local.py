"""``labelwise classify-file``: the upload runner on a local file, outputs written beside it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from labelwise.services import Services
from labelwise.uploads.jobs import BESIDE_LAYOUT, Budget, Outcome, UploadJobs, unlimited
from labelwise.uploads.models import UploadConfig, UploadEvent
from labelwise.uploads.objects import LocalObjectStore
from labelwise.uploads.ports import InlineQueue, ObjectInfo
from labelwise.uploads.readers import ReadFn


@dataclass(frozen=True)
class LocalOutputs:
    results: Path
    summary: Path
    error: Path


def local_outputs(path: Path) -> LocalOutputs:
    """Where :func:`classify_file` writes for ``path``."""
    path = Path(path)
    name = path.name
    return LocalOutputs(
        results=path.with_name(BESIDE_LAYOUT.results(name)),
        summary=path.with_name(BESIDE_LAYOUT.summary(name)),
        error=path.with_name(BESIDE_LAYOUT.error(name)),
    )


def local_config(
    *,
    labels: Sequence[str] | None = None,
    classifier_id: str | None = None,
    model: str | None = None,
    api_key_id: str | None = None,
) -> UploadConfig:
    if (labels is None) == (classifier_id is None):
        raise ValueError("give exactly one of labels and classifier_id")
    if labels is not None:
        return UploadConfig(
            mode="zero-shot", labels=list(labels), model=model, api_key_id=api_key_id, source="cli"
        )
    return UploadConfig(
        mode="few-shot", classifier_id=classifier_id, model=model, api_key_id=api_key_id, source="cli"
    )


class ReportingObjectStore(LocalObjectStore):
    """A :class:`LocalObjectStore` that reports, after each read of a file, the furthest byte offset
    read so far (``on_read(offset)``; a later part re-reads from its cursor, a little behind): how
    far through the file the job is, for a progress bar."""

    def __init__(self, root: Path, on_read: Callable[[int], None]) -> None:
        super().__init__(root)
        self._on_read = on_read
        self._furthest = 0

    @contextlib.contextmanager
    def open(self, info: ObjectInfo, offset: int) -> Iterator[ReadFn]:
        with super().open(info, offset) as read:
            reached = offset

            def reporting(n: int) -> bytes:
                nonlocal reached
                chunk = read(n)
                reached += len(chunk)
                self._furthest = max(self._furthest, reached)
                self._on_read(self._furthest)
                return chunk

            yield reporting


def classify_file(
    path: Path,
    config: UploadConfig,
    services: Services,
    budget: Budget = unlimited,
    on_read: Callable[[int], None] | None = None,
) -> Outcome:
    """Classify ``path`` like an upload: same readers, parts, checkpoints and outputs, with the
    follow-up messages handled in process. Returns the final outcome (``done`` or ``error``).
    ``on_read(offset)``: called with the furthest byte offset read after each read of the file."""
    path = Path(path).resolve()
    queue = InlineQueue()
    objects = LocalObjectStore(path.parent) if on_read is None else ReportingObjectStore(path.parent, on_read)
    jobs = UploadJobs(services, objects, queue, layout=BESIDE_LAYOUT)
    outcome = jobs.start(UploadEvent(bucket="local", key=path.name), budget, config=config)
    for checkpoint in queue.drain():
        outcome = jobs.resume(checkpoint, budget)
    return outcome
