"""One contract suite for every ClassifierStore / KeyStore adapter (memory, local SQLite, AWS on moto)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from labelwise.errors import Conflict, ResourceNotFound
from labelwise.settings import Settings
from labelwise.storage import open_stores
from labelwise.storage.aws import AwsClassifierStore, AwsKeyStore
from labelwise.storage.local import LocalClassifierStore, LocalKeyStore
from labelwise.storage.memory import MemoryClassifierStore, MemoryKeyStore
from labelwise.storage.ports import ClassifierMeta, ClassifierStore, KeyStore, VersionConflict, utcnow
from tests.support.moto_server import FAKE_AWS_ENV, aws_clients, create_table_and_bucket, moto_server

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
ADAPTERS = ["memory", "local", "aws"]


@dataclass
class Stores:
    classifiers: ClassifierStore
    keys: KeyStore
    reopen: Callable[[], tuple[ClassifierStore, KeyStore]]
    persisted: Callable[[], bytes]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def make_stores(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Stores:
    """Fresh, isolated stores of one adapter kind (shared by the concurrency suite)."""
    if kind == "memory":
        clf, keys = MemoryClassifierStore(), MemoryKeyStore()
        return Stores(clf, keys, lambda: (clf, keys), lambda: repr(clf.writes + keys.writes).encode())
    if kind == "local":
        data = tmp_path / "data"

        def persisted_local() -> bytes:
            return b"".join(p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file())

        return Stores(
            LocalClassifierStore(data),
            LocalKeyStore(data),
            lambda: (LocalClassifierStore(data), LocalKeyStore(data)),
            persisted_local,
        )
    if not TEMPLATE.exists():
        pytest.skip("template.yaml is missing: the AWS adapter is tested against its table definition")
    endpoint = request.getfixturevalue("moto_endpoint")
    ddb, s3 = aws_clients(endpoint)
    table, bucket = f"t-{uuid.uuid4().hex[:12]}", f"b-{uuid.uuid4().hex[:12]}"
    create_table_and_bucket(ddb, s3, table, bucket)

    def build() -> tuple[ClassifierStore, KeyStore]:
        d, s = aws_clients(endpoint)
        return AwsClassifierStore(table, bucket, dynamodb=d, s3=s), AwsKeyStore(table, dynamodb=d)

    def persisted_aws() -> bytes:
        items = [i for page in ddb.get_paginator("scan").paginate(TableName=table) for i in page["Items"]]
        blobs = [
            s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for obj in page.get("Contents", [])
        ]
        return repr(items).encode() + b"".join(blobs)

    clf, keys = build()
    return Stores(clf, keys, build, persisted_aws)


@pytest.fixture(params=ADAPTERS)
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    return make_stores(request.param, tmp_path, request)


def new_meta(owner: str = "tenant-a", **overrides) -> ClassifierMeta:
    now = utcnow()
    fields = dict(
        id=str(uuid.uuid4()),
        owner=owner,
        model="fake-model",
        labels=("sports", "politics"),
        access="private",
        num_samples=4,
        version=1,
        created_at=now,
        updated_at=now,
        train_count=1,
    )
    fields.update(overrides)
    return ClassifierMeta(**fields)


def next_meta(meta: ClassifierMeta, **changes) -> ClassifierMeta:
    update = dict(version=meta.version + 1, updated_at=utcnow(), train_count=meta.train_count + 1)
    update.update(changes)
    return meta.model_copy(update=update)


# -- classifiers ----------------------------------------------------------------------------------


def test_create_then_get_meta_and_weights_round_trip(stores: Stores):
    # Given a new classifier
    meta = new_meta()
    # When it is created
    stores.classifiers.create(meta, b"weights-v1")
    # Then its metadata and weights read back exactly
    assert stores.classifiers.get_meta(meta.id) == meta
    assert stores.classifiers.load_weights(meta.id, 1) == b"weights-v1"


@pytest.mark.parametrize("multi_label", [True, False, None])
def test_the_classifier_kind_round_trips_and_a_commit_records_it(stores: Stores, multi_label: bool | None):
    # Given a classifier created multi-label, single-label, or (None) stored before the kind was kept
    meta = new_meta(multi_label=multi_label)
    stores.classifiers.create(meta, b"w1")
    # Then the kind reads back as written, in the classifier and in its owner's listing
    assert stores.classifiers.get_meta(meta.id) == meta
    assert [m.multi_label for m in stores.classifiers.list_by_owner(meta.owner)] == [multi_label]
    # When a training call commits the next version with the kind its weights have
    stores.classifiers.commit_version(
        next_meta(meta, multi_label=bool(multi_label)), b"w2", expected_version=1
    )
    # Then the kind is recorded from then on, also after reopening
    assert stores.classifiers.get_meta(meta.id).multi_label is bool(multi_label)
    reopened, _ = stores.reopen()
    assert reopened.get_meta(meta.id).multi_label is bool(multi_label)


def test_unknown_ids(stores: Stores):
    assert stores.classifiers.get_meta("no-such-id") is None
    with pytest.raises(ResourceNotFound):
        stores.classifiers.load_weights("no-such-id", 1)
    assert stores.classifiers.delete("no-such-id") is False
    stores.classifiers.record_use("no-such-id")  # best effort: no error, nothing created
    assert stores.classifiers.get_meta("no-such-id") is None


def test_create_twice_conflicts(stores: Stores):
    meta = new_meta()
    stores.classifiers.create(meta, b"one")
    with pytest.raises(VersionConflict):
        stores.classifiers.create(meta, b"two")
    assert stores.classifiers.load_weights(meta.id, 1) == b"one"


def test_commit_versions_keeps_the_last_two(stores: Stores):
    # Given a classifier at version 1
    v1 = new_meta()
    stores.classifiers.create(v1, b"w1")
    # When two versions are committed
    v2 = next_meta(v1, labels=("sports", "politics", "tech"), num_samples=6, access="public")
    stores.classifiers.commit_version(v2, b"w2", expected_version=1)
    assert stores.classifiers.load_weights(v1.id, 1) == b"w1"  # previous still readable
    v3 = next_meta(v2, num_samples=9)
    stores.classifiers.commit_version(v3, b"w3", expected_version=2)
    # Then metadata is the newest, the last two versions are readable and older ones are gone
    got = stores.classifiers.get_meta(v1.id)
    assert got is not None
    assert (got.version, got.labels, got.access, got.num_samples, got.train_count) == (
        3,
        ("sports", "politics", "tech"),
        "public",
        9,
        3,
    )
    assert stores.classifiers.load_weights(v1.id, 3) == b"w3"
    assert stores.classifiers.load_weights(v1.id, 2) == b"w2"
    with pytest.raises(ResourceNotFound):
        stores.classifiers.load_weights(v1.id, 1)


def test_stale_commit_conflicts_and_leaves_the_winner_intact(stores: Stores):
    # Given two writers that both read version 1
    v1 = new_meta()
    stores.classifiers.create(v1, b"w1")
    winner, loser = next_meta(v1, num_samples=5), next_meta(v1, num_samples=50)
    # When the first commits and the second commits afterwards with the same expectation
    stores.classifiers.commit_version(winner, b"winner", expected_version=1)
    with pytest.raises(VersionConflict) as info:
        stores.classifiers.commit_version(loser, b"loser", expected_version=1)
    # Then the loser gets a Conflict and nothing of it is visible
    assert isinstance(info.value, Conflict)
    got = stores.classifiers.get_meta(v1.id)
    assert got is not None and (got.version, got.num_samples) == (2, 5)
    assert stores.classifiers.load_weights(v1.id, 2) == b"winner"
    assert b"loser" not in stores.persisted()


def test_commit_requires_next_version(stores: Stores):
    v1 = new_meta()
    stores.classifiers.create(v1, b"w1")
    with pytest.raises(ValueError):
        stores.classifiers.commit_version(next_meta(v1, version=5), b"x", expected_version=1)


def test_commit_after_delete_conflicts(stores: Stores):
    v1 = new_meta()
    stores.classifiers.create(v1, b"w1")
    assert stores.classifiers.delete(v1.id) is True
    with pytest.raises(VersionConflict):
        stores.classifiers.commit_version(next_meta(v1), b"w2", expected_version=1)
    assert stores.classifiers.get_meta(v1.id) is None


def test_delete_removes_metadata_and_weights(stores: Stores):
    v1 = new_meta()
    stores.classifiers.create(v1, b"secret-weights-1")
    stores.classifiers.commit_version(next_meta(v1), b"secret-weights-2", expected_version=1)
    assert stores.classifiers.delete(v1.id) is True
    assert stores.classifiers.get_meta(v1.id) is None
    with pytest.raises(ResourceNotFound):
        stores.classifiers.load_weights(v1.id, 2)
    assert stores.classifiers.delete(v1.id) is False
    if not isinstance(stores.classifiers, MemoryClassifierStore):  # the memory log keeps history
        assert b"secret-weights" not in stores.persisted()


def test_record_use_counts_and_survives_commits(stores: Stores):
    # Given a classifier used twice
    v1 = new_meta()
    stores.classifiers.create(v1, b"w1")
    stores.classifiers.record_use(v1.id)
    stores.classifiers.record_use(v1.id)
    # When a new version is committed from metadata read before the uses
    stores.classifiers.commit_version(next_meta(v1), b"w2", expected_version=1)
    # Then the use counter and timestamp are not lost
    got = stores.classifiers.get_meta(v1.id)
    assert got is not None
    assert got.classify_count == 2
    assert got.last_used_at is not None and got.last_used_at >= v1.created_at


def test_owner_listing_and_count(stores: Stores):
    # Given classifiers of two tenants created at increasing times
    base = utcnow()
    mine = [new_meta(created_at=base + timedelta(seconds=i), updated_at=base) for i in (2, 0, 1)]
    theirs = new_meta(owner="tenant-b")
    for meta in [*mine, theirs]:
        stores.classifiers.create(meta, b"w")
    # When listing by owner
    listed = stores.classifiers.list_by_owner("tenant-a")
    # Then only the owner's, oldest first, and the count agrees
    assert [m.id for m in listed] == [m.id for m in sorted(mine, key=lambda m: m.created_at)]
    assert stores.classifiers.count_by_owner("tenant-a") == 3
    assert stores.classifiers.count_by_owner("tenant-b") == 1
    assert stores.classifiers.count_by_owner("nobody") == 0
    assert stores.classifiers.list_by_owner("nobody") == []


def test_data_survives_reopening(stores: Stores):
    meta = new_meta()
    stores.classifiers.create(meta, b"persisted")
    plaintext, record = stores.keys.create("tenant-a", "ci")
    classifiers, keys = stores.reopen()
    assert classifiers.get_meta(meta.id) == meta
    assert classifiers.load_weights(meta.id, 1) == b"persisted"
    assert keys.authenticate(plaintext) == record


# -- keys -----------------------------------------------------------------------------------------


def test_key_lifecycle(stores: Stores):
    # Given two keys of one tenant and one of another
    plain_a, rec_a = stores.keys.create("tenant-a", "laptop")
    _, rec_b = stores.keys.create("tenant-a", "ci")
    _, rec_c = stores.keys.create("tenant-b", "other")
    # Then keys look right and authenticate
    assert plain_a.startswith("lw_") and len(plain_a) > 40
    assert rec_a.tenant_id == "tenant-a" and rec_a.name == "laptop" and not rec_a.revoked
    assert stores.keys.authenticate(plain_a) == rec_a
    assert stores.keys.authenticate("lw_wrong") is None
    assert [r.key_id for r in stores.keys.list("tenant-a")] == [rec_a.key_id, rec_b.key_id]
    assert {r.key_id for r in stores.keys.list()} == {rec_a.key_id, rec_b.key_id, rec_c.key_id}
    # When one is revoked
    stores.keys.revoke(rec_a.key_id)
    # Then it no longer authenticates but is still listed as revoked
    assert stores.keys.authenticate(plain_a) is None
    listed = {r.key_id: r for r in stores.keys.list("tenant-a")}
    assert listed[rec_a.key_id].revoked and not listed[rec_b.key_id].revoked
    with pytest.raises(ResourceNotFound):
        stores.keys.revoke("key_unknown")


def test_plaintext_keys_are_never_persisted(stores: Stores):
    plaintext, _ = stores.keys.create("tenant-a", "laptop")
    persisted = stores.persisted()
    assert plaintext.encode() not in persisted
    assert plaintext[3:].encode() not in persisted


# -- wiring ---------------------------------------------------------------------------------------


def test_open_stores_builds_the_configured_adapter(tmp_path: Path, monkeypatch, request):
    # Given local settings; Then local adapters
    local = Settings.from_environ({"LABELWISE_DATA_DIR": str(tmp_path), "LABELWISE_CACHE_DIR": str(tmp_path)})
    clf, keys = open_stores(local)
    assert isinstance(clf, LocalClassifierStore) and isinstance(keys, LocalKeyStore)
    # Given AWS settings pointing at moto (credentials from the environment); Then AWS adapters that work
    if not TEMPLATE.exists():
        pytest.skip("template.yaml is missing")
    endpoint = request.getfixturevalue("moto_endpoint")
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    ddb, s3 = aws_clients(endpoint)
    create_table_and_bucket(ddb, s3, "wiring-table", "wiring-bucket")
    aws = Settings.from_environ(
        {
            "LABELWISE_DATA_DIR": str(tmp_path),
            "LABELWISE_CACHE_DIR": str(tmp_path),
            "LABELWISE_STORE": "aws",
            "LABELWISE_TABLE_NAME": "wiring-table",
            "LABELWISE_BUCKET_NAME": "wiring-bucket",
            "LABELWISE_AWS_ENDPOINT_URL": endpoint,
        }
    )
    clf, keys = open_stores(aws)
    assert isinstance(clf, AwsClassifierStore) and isinstance(keys, AwsKeyStore)
    meta = new_meta()
    clf.create(meta, b"w")
    assert clf.get_meta(meta.id) == meta
