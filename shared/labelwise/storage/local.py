"""Local adapter: SQLite metadata (WAL) plus weights files under the data directory.

Layout under ``data_dir``::

    labelwise.sqlite3                      classifiers + api_keys tables
    weights/<classifier id>/v<version>-<token>.npz

Weights file names carry a random token so two writers racing for the same version never
overwrite each other's blob; the metadata row points at the winner's file. Files are written to a
temporary name, fsynced and ``os.replace``d into place before the row flips (conditional update in
a ``BEGIN IMMEDIATE`` transaction). Thread-safe: each operation borrows a connection from a small
pool (none is tied to a thread, so a server's thread per client leaks none).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from labelwise.errors import ResourceNotFound, StoreUnavailable
from labelwise.storage.ports import (
    ApiKeyRecord,
    ClassifierMeta,
    ClassifierStore,
    KeyStore,
    VersionConflict,
    hash_api_key,
    issue_api_key,
    utcnow,
    validate_commit,
)

logger = logging.getLogger(__name__)

DB_FILE = "labelwise.sqlite3"
WEIGHTS_DIR = "weights"
BUSY_TIMEOUT_MS = 10_000
#: Connections kept open between operations, per store (more are opened under load, then closed).
MAX_IDLE_CONNECTIONS = 4
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS classifiers (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    model TEXT NOT NULL,
    labels TEXT NOT NULL,
    access TEXT NOT NULL,
    num_samples INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_used_at TEXT,
    classify_count INTEGER NOT NULL DEFAULT 0,
    train_count INTEGER NOT NULL DEFAULT 0,
    weights_file TEXT NOT NULL,
    prev_version INTEGER,
    prev_weights_file TEXT,
    multi_label INTEGER
);
CREATE INDEX IF NOT EXISTS classifiers_owner ON classifiers (owner, created_at, id);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant_id, created_at, key_id);
"""


#: Columns added to ``classifiers`` after the first release: a store created before gets them
#: (NULL in existing rows) when it is opened.
_ADDED_COLUMNS = {"multi_label": "INTEGER"}


def _migrate(conn: sqlite3.Connection) -> None:
    """Add the columns of :data:`_ADDED_COLUMNS` a store created by an earlier release lacks."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(classifiers)")}
    for name, kind in _ADDED_COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE classifiers ADD COLUMN {name} {kind}")


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


class _Database:
    """One SQLite file; a small pool of connections, each lent to one operation at a time.

    Connections are not tied to threads: the local server starts a thread per client connection,
    and a connection per thread that lived until shutdown exhausted the open-file limit after a few
    hundred clients (issue 12 item 1). A connection is borrowed for one query or transaction and put
    back; at most ``max_idle`` stay open between uses, the rest are closed on return. Autocommit
    mode with explicit transactions.
    """

    def __init__(self, path: Path, max_idle: int = MAX_IDLE_CONNECTIONS) -> None:
        self.path = path
        self.max_idle = max_idle
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._generation = 0  # bumped by close(): connections lent before it are closed on return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self.connection() as conn:
                conn.executescript(_SCHEMA)
                _migrate(conn)
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailable(f"Local store at {path} is not usable.") from exc

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Borrow a connection for one operation (finish reading its results inside the block)."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
            generation = self._generation
        if conn is None:
            conn = self._open()
        try:
            yield conn
        finally:
            self._give_back(conn, generation)

    def _give_back(self, conn: sqlite3.Connection, generation: int) -> None:
        keep = True
        try:
            if conn.in_transaction:  # never lend a connection in the middle of someone's transaction
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            keep = False
        if keep:
            with self._lock:
                keep = generation == self._generation and len(self._idle) < self.max_idle
                if keep:
                    self._idle.append(conn)
        if not keep:
            conn.close()

    @property
    def idle_connections(self) -> int:
        with self._lock:
            return len(self._idle)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` (takes the write lock up front) ... ``COMMIT`` / ``ROLLBACK``."""
        with self.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close the idle connections now, and those lent out when they come back."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
        for conn in idle:
            conn.close()


@contextlib.contextmanager
def _wrap_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise StoreUnavailable(f"Local store failed to {what}.") from exc


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a fsynced temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        logger.warning("could not delete old weights file %s", path)


class LocalClassifierStore(ClassifierStore):
    """:class:`ClassifierStore` on SQLite + files under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._db = _Database(self.data_dir / DB_FILE)

    def close(self) -> None:
        self._db.close()

    def _weights_path(self, classifier_id: str, file_name: str) -> Path:
        return self.data_dir / WEIGHTS_DIR / classifier_id / file_name

    def _write_weights(self, classifier_id: str, version: int, weights: bytes) -> str:
        if not _SAFE_ID.match(classifier_id):
            raise ValueError(f"unsafe classifier id {classifier_id!r}")
        name = f"v{version}-{secrets.token_hex(6)}.npz"
        with _wrap_errors("write weights"):
            _write_atomic(self._weights_path(classifier_id, name), weights)
        return name

    def create(self, meta: ClassifierMeta, weights: bytes) -> None:
        file_name = self._write_weights(meta.id, meta.version, weights)
        try:
            with _wrap_errors("create a classifier"), self._db.transaction() as conn:
                try:
                    conn.execute(
                        "INSERT INTO classifiers (id, owner, model, labels, access, num_samples, version,"
                        " created_at, updated_at, last_used_at, classify_count, train_count, weights_file,"
                        " multi_label) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            meta.id, meta.owner, meta.model, json.dumps(list(meta.labels)), meta.access,
                            meta.num_samples, meta.version, _iso(meta.created_at), _iso(meta.updated_at),
                            _iso(meta.last_used_at), meta.classify_count, meta.train_count, file_name,
                            _flag(meta.multi_label),
                        ),
                    )  # fmt: skip
                except sqlite3.IntegrityError as exc:
                    raise VersionConflict(f"Classifier {meta.id} already exists.") from exc
        except (VersionConflict, StoreUnavailable):
            _remove_quietly(self._weights_path(meta.id, file_name))
            raise

    def _row(self, classifier_id: str) -> sqlite3.Row | None:
        with _wrap_errors("read a classifier"), self._db.connection() as conn:
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM classifiers WHERE id = ?", (classifier_id,)
            ).fetchone()
        return row

    @staticmethod
    def _meta(row: sqlite3.Row) -> ClassifierMeta:
        return ClassifierMeta(
            id=row["id"],
            owner=row["owner"],
            model=row["model"],
            labels=tuple(json.loads(row["labels"])),
            access=row["access"],
            num_samples=row["num_samples"],
            version=row["version"],
            created_at=datetime.fromisoformat(row["created_at"]),
            updated_at=datetime.fromisoformat(row["updated_at"]),
            last_used_at=_dt(row["last_used_at"]),
            classify_count=row["classify_count"],
            train_count=row["train_count"],
            multi_label=None if row["multi_label"] is None else bool(row["multi_label"]),
        )

    def get_meta(self, classifier_id: str) -> ClassifierMeta | None:
        row = self._row(classifier_id)
        return None if row is None else self._meta(row)

    def load_weights(self, classifier_id: str, version: int) -> bytes:
        row = self._row(classifier_id)
        file_name: str | None = None
        if row is not None and row["version"] == version:
            file_name = row["weights_file"]
        elif row is not None and row["prev_version"] == version:
            file_name = row["prev_weights_file"]
        if file_name is None:
            raise ResourceNotFound(f"Weights of classifier {classifier_id} version {version} not found.")
        try:
            return self._weights_path(classifier_id, file_name).read_bytes()
        except FileNotFoundError as exc:
            raise ResourceNotFound(
                f"Weights of classifier {classifier_id} version {version} not found."
            ) from exc
        except OSError as exc:
            raise StoreUnavailable("Local store failed to read weights.") from exc

    def commit_version(self, meta: ClassifierMeta, weights: bytes, expected_version: int) -> None:
        validate_commit(meta, expected_version)
        file_name = self._write_weights(meta.id, meta.version, weights)
        obsolete: str | None = None
        try:
            with _wrap_errors("commit a version"), self._db.transaction() as conn:
                row = conn.execute(
                    "SELECT version, weights_file, prev_weights_file FROM classifiers WHERE id = ?",
                    (meta.id,),
                ).fetchone()
                if row is None or row["version"] != expected_version:
                    raise VersionConflict(f"Classifier {meta.id} is no longer at version {expected_version}.")
                conn.execute(
                    "UPDATE classifiers SET labels = ?, access = ?, num_samples = ?, version = ?,"
                    " updated_at = ?, train_count = ?, weights_file = ?, prev_version = ?,"
                    " prev_weights_file = ?, multi_label = COALESCE(?, multi_label)"
                    " WHERE id = ? AND version = ?",
                    (
                        json.dumps(list(meta.labels)), meta.access, meta.num_samples, meta.version,
                        _iso(meta.updated_at), meta.train_count, file_name, expected_version,
                        row["weights_file"], _flag(meta.multi_label), meta.id, expected_version,
                    ),
                )  # fmt: skip
                obsolete = row["prev_weights_file"]
        except (VersionConflict, StoreUnavailable):
            _remove_quietly(self._weights_path(meta.id, file_name))
            raise
        if obsolete:
            _remove_quietly(self._weights_path(meta.id, obsolete))

    def list_by_owner(self, tenant_id: str) -> list[ClassifierMeta]:
        with _wrap_errors("list classifiers"), self._db.connection() as conn:
            rows = conn.execute(
                "SELECT * FROM classifiers WHERE owner = ? ORDER BY created_at, id", (tenant_id,)
            ).fetchall()
        return [self._meta(row) for row in rows]

    def count_by_owner(self, tenant_id: str) -> int:
        with _wrap_errors("count classifiers"), self._db.connection() as conn:
            row = conn.execute("SELECT COUNT(*) FROM classifiers WHERE owner = ?", (tenant_id,)).fetchone()
        return int(row[0])

    def delete(self, classifier_id: str) -> bool:
        with _wrap_errors("delete a classifier"), self._db.transaction() as conn:
            deleted = conn.execute("DELETE FROM classifiers WHERE id = ?", (classifier_id,)).rowcount > 0
        if deleted and _SAFE_ID.match(classifier_id):
            shutil.rmtree(self.data_dir / WEIGHTS_DIR / classifier_id, ignore_errors=True)
        return deleted

    def record_use(self, classifier_id: str) -> None:
        try:
            with self._db.connection() as conn:
                conn.execute(
                    "UPDATE classifiers SET classify_count = classify_count + 1, last_used_at = ?"
                    " WHERE id = ?",
                    (_iso(utcnow()), classifier_id),
                )
        except sqlite3.Error:
            logger.warning("could not record use of classifier %s", classifier_id, exc_info=True)


class LocalKeyStore(KeyStore):
    """:class:`KeyStore` on the same SQLite file."""

    def __init__(self, data_dir: Path) -> None:
        self._db = _Database(Path(data_dir) / DB_FILE)

    def close(self) -> None:
        self._db.close()

    @staticmethod
    def _record(row: sqlite3.Row | dict[str, Any]) -> ApiKeyRecord:
        return ApiKeyRecord(
            key_id=row["key_id"],
            tenant_id=row["tenant_id"],
            name=row["name"],
            created_at=datetime.fromisoformat(row["created_at"]),
            revoked=bool(row["revoked"]),
        )

    def create(self, tenant_id: str, name: str) -> tuple[str, ApiKeyRecord]:
        plaintext, digest, record = issue_api_key(tenant_id, name)
        with _wrap_errors("create an API key"), self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys (key_hash, key_id, tenant_id, name, created_at, revoked)"
                " VALUES (?, ?, ?, ?, ?, 0)",
                (digest, record.key_id, tenant_id, name, _iso(record.created_at)),
            )
        return plaintext, record

    def authenticate(self, plaintext: str) -> ApiKeyRecord | None:
        with _wrap_errors("authenticate"), self._db.connection() as conn:
            row = conn.execute(
                "SELECT * FROM api_keys WHERE key_hash = ?", (hash_api_key(plaintext),)
            ).fetchone()
        if row is None or row["revoked"]:
            return None
        return self._record(row)

    def list(self, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        with _wrap_errors("list API keys"), self._db.connection() as conn:
            if tenant_id is None:
                rows = conn.execute("SELECT * FROM api_keys ORDER BY created_at, key_id").fetchall()
            else:
                rows = conn.execute(
                    "SELECT * FROM api_keys WHERE tenant_id = ? ORDER BY created_at, key_id", (tenant_id,)
                ).fetchall()
        return [self._record(row) for row in rows]

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with _wrap_errors("read an API key"), self._db.connection() as conn:
            row = conn.execute("SELECT * FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
        return None if row is None else self._record(row)

    def revoke(self, key_id: str) -> None:
        with _wrap_errors("revoke an API key"), self._db.transaction() as conn:
            changed = conn.execute("UPDATE api_keys SET revoked = 1 WHERE key_id = ?", (key_id,)).rowcount
        if not changed:
            raise ResourceNotFound(f"API key {key_id} not found.")
