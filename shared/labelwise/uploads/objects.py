""":class:`~labelwise.uploads.ports.ObjectStore` adapters without AWS: a local directory (the
``labelwise classify-file`` command) and an in-memory, versioned store (unit tests)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from labelwise.errors import StoreUnavailable
from labelwise.uploads.ports import ObjectChanged, ObjectInfo, ObjectStore
from labelwise.uploads.readers import ReadFn


class LocalObjectStore(ObjectStore):
    """Keys are paths relative to ``root``. A file's "version" is its mtime and size (as the ETag)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents:
            raise ValueError(f"key {key!r} leaves {self.root}")
        return path

    @staticmethod
    def _etag(stat: os.stat_result) -> str:
        return f"{stat.st_mtime_ns:x}-{stat.st_size:x}"

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo | None:
        try:
            stat = self._path(key).stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreUnavailable(f"Cannot read {key}.") from exc
        return ObjectInfo(key=key, version_id=None, etag=self._etag(stat), size=stat.st_size)

    @contextlib.contextmanager
    def open(self, info: ObjectInfo, offset: int) -> Iterator[ReadFn]:
        path = self._path(info.key)
        try:
            handle = path.open("rb")
        except FileNotFoundError as exc:
            raise ObjectChanged(f"{info.key} was deleted.") from exc
        with handle:
            if self._etag(os.fstat(handle.fileno())) != info.etag:
                raise ObjectChanged(f"{info.key} changed while it was being classified.")
            handle.seek(offset)
            yield handle.read

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.put_stream(key, [data], content_type)

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            os.replace(tmp, path)  # readers see the old file or the whole new one
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            parent = path.parent
            while parent != self.root and self.root in parent.parents:
                try:
                    parent.rmdir()  # only empty directories (the runner's parts folders)
                except OSError:
                    break
                parent = parent.parent


@dataclass
class _Version:
    data: bytes
    version_id: str | None
    etag: str
    metadata: Mapping[str, str]


@dataclass
class MemoryObjectStore(ObjectStore):
    """A versioned bucket in memory. :attr:`writes` lists every key written, in order."""

    versioned: bool = True
    _objects: dict[str, list[_Version]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counter: int = 0
    writes: list[str] = field(default_factory=list)
    reads: list[tuple[str, int]] = field(default_factory=list)

    def upload(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> ObjectInfo:
        """Store a new version of ``key`` (what a client's PutObject does); returns its info."""
        self._write(key, data, {k.lower(): v for k, v in (metadata or {}).items()})
        info = self.head(key)
        assert info is not None
        return info

    def _write(self, key: str, data: bytes, metadata: Mapping[str, str]) -> None:
        with self._lock:
            self._counter += 1
            version = _Version(
                data=bytes(data),
                version_id=f"v{self._counter}" if self.versioned else None,
                etag=hashlib.md5(data, usedforsecurity=False).hexdigest(),
                metadata=dict(metadata),
            )
            versions = self._objects.setdefault(key, [])
            if not self.versioned:
                versions.clear()
            versions.append(version)
            self.writes.append(key)

    def _find(self, key: str, version_id: str | None) -> _Version | None:
        versions = self._objects.get(key) or []
        if version_id is None:
            return versions[-1] if versions else None
        return next((v for v in versions if v.version_id == version_id), None)

    def head(self, key: str, version_id: str | None = None) -> ObjectInfo | None:
        with self._lock:
            found = self._find(key, version_id)
        if found is None:
            return None
        return ObjectInfo(key, found.version_id, found.etag, len(found.data), dict(found.metadata))

    @contextlib.contextmanager
    def open(self, info: ObjectInfo, offset: int) -> Iterator[ReadFn]:
        with self._lock:
            found = self._find(info.key, info.version_id)
        if found is None or found.etag != info.etag:
            raise ObjectChanged(f"{info.key} changed while it was being classified.")
        self.reads.append((info.key, offset))
        yield io.BytesIO(found.data[offset:]).read

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self._find(key, None)
        return None if found is None else found.data

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self._write(key, data, {})

    def put_stream(self, key: str, chunks: Iterable[bytes], content_type: str) -> None:
        self._write(key, b"".join(chunks), {})

    def delete(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._objects.pop(key, None)

    def keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k in self._objects if k.startswith(prefix))
