"""``labelwise keys``: the key store comes from the composition root (``runtime.build_key_store``)."""

from __future__ import annotations

from pathlib import Path

import pytest

import labelwise.runtime
from labelwise.cli import main
from labelwise.settings import Settings
from labelwise.storage.local import LocalKeyStore
from labelwise.storage.ports import KeyStore


def test_build_key_store_opens_the_configured_key_store(settings: Settings) -> None:
    # Given settings naming the local store (the test default)
    assert settings.store == "local"
    # When the composition root builds the key store
    keys = labelwise.runtime.build_key_store(settings)
    # Then it is the local key store, empty
    assert isinstance(keys, LocalKeyStore)
    assert keys.list() == []


def test_keys_commands_go_through_the_composition_root(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Given a local store and a runtime whose build_key_store is recorded
    monkeypatch.setenv("LABELWISE_STORE", "local")
    monkeypatch.setenv("LABELWISE_DATA_DIR", str(tmp_path))
    built: list[Settings] = []
    real = labelwise.runtime.build_key_store

    def recording(settings: Settings) -> KeyStore:
        built.append(settings)
        return real(settings)

    monkeypatch.setattr(labelwise.runtime, "build_key_store", recording)
    # When a key is created, listed and revoked
    assert main(["keys", "create", "--tenant", "tnt_x", "--name", "ci"]) == 0
    key_id = capsys.readouterr().out.split("key id: ", 1)[1].split()[0]
    assert main(["keys", "list", "--tenant", "tnt_x"]) == 0
    listed = capsys.readouterr().out
    assert main(["keys", "revoke", key_id]) == 0
    revoked = capsys.readouterr().out
    # Then each command opened its store through runtime, and the store saw all three
    assert len(built) == 3
    assert f"{key_id}\ttnt_x\tactive\t" in listed and listed.rstrip().endswith("\tci")
    assert revoked.strip() == f"revoked {key_id}"
    assert [r.revoked for r in real(built[0]).list("tnt_x")] == [True]
