"""``labelwise classify-file``: the upload runner on a local file; and KeyStore.get (uploader lookup)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelwise.cli import main
from labelwise.settings import Settings
from labelwise.storage.local import LocalKeyStore
from labelwise.storage.memory import MemoryKeyStore
from labelwise.storage.ports import KeyStore
from labelwise.uploads.local import classify_file, local_config, local_outputs
from tests.unit.test_uploads_jobs import LABELS, make_services


def test_local_file_gets_the_same_outputs_beside_it(settings: Settings, tmp_path: Path) -> None:
    # Given a local CSV with one bad row
    path = tmp_path / "tickets.csv"
    path.write_bytes(b"id,text\r\n1,invoice billing\r\n2,x,y\r\n3,password login\r\n")
    # When it is classified with labels, with a budget so small that every part is a follow-up
    services = make_services(settings, uploads_part_records=1, uploads_safety_margin_ms=0)
    outcome = classify_file(path, local_config(labels=LABELS), services, budget=lambda: 0)
    # Then results and summary are written beside it, like results/ and its summary in the bucket
    outputs = local_outputs(path)
    assert outcome.status == "done"
    rows = [json.loads(line) for line in outputs.results.read_text().splitlines()]
    assert [(r["index"], r["id"], r["prediction"]) for r in rows] == [
        (0, "1", LABELS[0]),
        (2, "3", LABELS[1]),
    ]
    summary = json.loads(outputs.summary.read_text())
    assert summary["rejected"] == [{"line": 3, "index": 1, "reason": "3 fields where the header has 2"}]
    assert summary["parts"] == 3 and summary["invocations"] == 3
    # And no parts folder is left
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "tickets.csv",
        "tickets.csv.results.jsonl",
        "tickets.csv.summary.json",
    ]


def test_cli_reports_an_unusable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a file with an unknown extension
    path = tmp_path / "sheet.xlsx"
    path.write_bytes(b"PK")
    monkeypatch.setenv("LABELWISE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LABELWISE_MODEL_DIR", str(tmp_path / "no-models"))
    # When the command runs on it
    code = main(["classify-file", str(path), "--labels", "a,b"])
    # Then it fails with the error document beside the file
    assert code == 1
    error = json.loads(local_outputs(path).error.read_text())
    assert error["code"] == "UPLOAD_UNUSABLE" and "Unknown file format" in error["message"]


@pytest.mark.parametrize("kind", ["memory", "local"])
def test_key_store_get_by_key_id(kind: str, tmp_path: Path) -> None:
    # Given a key store with one key, later revoked
    keys: KeyStore = MemoryKeyStore() if kind == "memory" else LocalKeyStore(tmp_path)
    _, record = keys.create("tenant", "uploader")
    # Then get() finds it by its public id, revoked or not, and None for unknown ids
    assert keys.get(record.key_id) == record
    keys.revoke(record.key_id)
    found = keys.get(record.key_id)
    assert found is not None and found.revoked
    assert keys.get("key_unknown") is None
