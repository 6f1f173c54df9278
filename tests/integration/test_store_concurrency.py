"""Concurrent train calls on one classifier: the retrying optimistic update loses nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from labelwise.classify import fewshot
from labelwise.embedding.registry import ModelRegistry
from labelwise.learning.mixture import load_learner
from labelwise.storage import local
from labelwise.storage.ports import ApiKeyRecord
from tests.integration.test_store_contract import make_stores
from tests.support.fakes import HashingEmbedder
from tests.support.moto_server import moto_server

WRITERS = 8
BATCHES = 20
OWNER = ApiKeyRecord(key_id="key_owner", tenant_id="tenant-a", name="owner", created_at=datetime.now(UTC))


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["memory", "local", "aws"])
def test_concurrent_writers_lose_no_updates(kind, tmp_path: Path, request, settings):
    # Given one classifier and 8 writer threads, each with 20 batches (one with a brand-new label)
    stores = make_stores(kind, tmp_path, request)
    registry = ModelRegistry.from_embedders([HashingEmbedder()])
    created = fewshot.train(registry, stores.classifiers, settings, OWNER,
                            examples=[("red apple", "fruit"), ("green lettuce", "vegetable")])  # fmt: skip
    cid = created.classifier_id
    sizes: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(w: int) -> None:
        start.wait()
        for b in range(BATCHES):
            label = f"writer{w}" if b == BATCHES // 2 else ("fruit" if b % 2 else "vegetable")
            batch = [(f"item {w} {b} {k}", label) for k in range(1 + (w + b) % 3)]
            try:
                fewshot.train(registry, stores.classifiers, settings, OWNER, classifier_id=cid,
                              examples=batch, max_attempts=200)  # fmt: skip
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return
            sizes.append(len(batch))

    # When they all train concurrently
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    # Then every batch landed exactly once: samples, versions, train count, labels and weights agree
    assert errors == []
    assert len(sizes) == WRITERS * BATCHES
    meta = stores.classifiers.get_meta(cid)
    assert meta is not None
    assert meta.num_samples == 2 + sum(sizes)
    assert meta.version == 1 + WRITERS * BATCHES
    assert meta.train_count == 1 + WRITERS * BATCHES
    assert set(meta.labels) == {"fruit", "vegetable", *(f"writer{w}" for w in range(WRITERS))}
    learner = load_learner(stores.classifiers.load_weights(cid, meta.version))
    assert learner.labels == list(meta.labels)
    assert learner.num_samples == meta.num_samples
    assert learner.pa.steps == learner.num_iters * meta.num_samples
    assert learner.counts.sum() == pytest.approx(learner.num_iters / 10 * meta.num_samples)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts /proc/self/fd (linux)")
def test_threads_that_come_and_go_leave_no_sqlite_connections_open(tmp_path: Path) -> None:
    # Given the local stores, and this process's open files once they are in use
    store, keys = local.LocalClassifierStore(tmp_path), local.LocalKeyStore(tmp_path)
    key, _ = keys.create("tenant-a", "k")
    store.list_by_owner("tenant-a")

    def use_the_stores() -> None:
        assert keys.authenticate(key) is not None
        store.list_by_owner("tenant-a")
        store.count_by_owner("tenant-a")

    def open_files() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    before = open_files()
    # When 300 short-lived threads use them one after another, then 16 at once
    for _ in range(300):
        t = threading.Thread(target=use_the_stores)
        t.start()
        t.join()
    after_sequential = open_files()
    start = threading.Barrier(16)
    burst = [threading.Thread(target=lambda: (start.wait(), use_the_stores())) for _ in range(16)]
    for t in burst:
        t.start()
    for t in burst:
        t.join()
    # Then no connection outlives its thread, and a burst keeps at most the pool's idle size open
    assert after_sequential <= before + 2, (before, after_sequential)
    assert store._db.idle_connections <= local.MAX_IDLE_CONNECTIONS
    assert keys._db.idle_connections <= local.MAX_IDLE_CONNECTIONS
    store.close()
    keys.close()
    assert store._db.idle_connections == keys._db.idle_connections == 0
    assert open_files() <= before
