"""A local store written by an earlier release opens, keeps its classifiers, and gains the columns
added since (``labelwise.storage.local._ADDED_COLUMNS``)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from labelwise.storage.local import DB_FILE, WEIGHTS_DIR, LocalClassifierStore

#: The classifiers table as releases before the classifier kind was kept created it.
OLD_SCHEMA = """
CREATE TABLE classifiers (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, model TEXT NOT NULL, labels TEXT NOT NULL,
    access TEXT NOT NULL, num_samples INTEGER NOT NULL, version INTEGER NOT NULL,
    created_at TEXT NOT NULL, updated_at TEXT NOT NULL, last_used_at TEXT,
    classify_count INTEGER NOT NULL DEFAULT 0, train_count INTEGER NOT NULL DEFAULT 0,
    weights_file TEXT NOT NULL, prev_version INTEGER, prev_weights_file TEXT
);
"""


def _old_store(data: Path) -> None:
    data.mkdir(parents=True)
    (data / WEIGHTS_DIR / "c1").mkdir(parents=True)
    (data / WEIGHTS_DIR / "c1" / "v1.npz").write_bytes(b"weights-v1")
    now = datetime(2026, 11, 1, tzinfo=UTC).isoformat()
    with sqlite3.connect(data / DB_FILE) as conn:
        conn.executescript(OLD_SCHEMA)
        conn.execute(
            "INSERT INTO classifiers (id, owner, model, labels, access, num_samples, version, created_at,"
            " updated_at, weights_file) VALUES ('c1', 't1', 'm', '[\"a\", \"b\"]', 'private', 4, 1, ?, ?,"
            " 'v1.npz')",
            (now, now),
        )


def test_a_store_from_an_earlier_release_opens_and_records_the_kind_from_the_next_commit(tmp_path: Path):
    # Given a local store written before the classifier kind was kept
    data = tmp_path / "data"
    _old_store(data)
    # When this release opens it
    store = LocalClassifierStore(data)
    # Then its classifier reads back unchanged, its kind unknown, its weights intact
    meta = store.get_meta("c1")
    assert meta is not None
    assert (meta.labels, meta.num_samples, meta.version, meta.multi_label) == (("a", "b"), 4, 1, None)
    assert store.load_weights("c1", 1) == b"weights-v1"
    # And the next commit records the kind
    later = meta.model_copy(update={"version": 2, "train_count": 2, "multi_label": False})
    store.commit_version(later, b"weights-v2", expected_version=1)
    assert LocalClassifierStore(data).get_meta("c1").multi_label is False
    # And opening it again (the column now there) changes nothing
    with sqlite3.connect(data / DB_FILE) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(classifiers)")]
    assert columns.count("multi_label") == 1
