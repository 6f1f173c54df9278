"""Few-shot service logic with in-memory fakes (hashing embedder, memory store)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import numpy as np
import pytest
from numpy.testing import assert_allclose

from labelwise.classify import fewshot
from labelwise.classify.fewshot import (
    WeightsCache,
    classify_with_classifier,
    delete_classifier,
    get_classifier,
    list_classifiers,
    train,
)
from labelwise.embedding.registry import ModelRegistry
from labelwise.errors import (
    Conflict,
    InvalidInput,
    InvalidLabels,
    LabelLimitExceeded,
    ModelMismatch,
    ResourceLimitExceeded,
    ResourceNotFound,
)
from labelwise.learning.mixture import MixtureLearner, load_learner
from labelwise.storage.memory import MemoryClassifierStore
from labelwise.storage.ports import ApiKeyRecord, VersionConflict
from tests.support.fakes import HashingEmbedder, fake_manifest

OWNER = ApiKeyRecord(key_id="key_owner", tenant_id="tenant-a", name="owner", created_at=datetime.now(UTC))
OTHER = ApiKeyRecord(key_id="key_other", tenant_id="tenant-b", name="other", created_at=datetime.now(UTC))

SPORTS = [("the striker scored a goal", "sports"), ("tennis match point won", "sports")]
POLITICS = [("parliament passed the budget bill", "politics"), ("the senator lost the election", "politics")]


@pytest.fixture(autouse=True)
def empty_cache():
    fewshot.WEIGHTS_CACHE.clear()
    yield
    fewshot.WEIGHTS_CACHE.clear()


@pytest.fixture
def registry() -> ModelRegistry:
    return ModelRegistry.from_embedders(
        [HashingEmbedder(), HashingEmbedder(fake_manifest("other-model", ()))]
    )


@pytest.fixture
def store() -> MemoryClassifierStore:
    return MemoryClassifierStore()


def make(registry, store, settings, examples=SPORTS + POLITICS, **kw):
    return train(registry, store, settings, OWNER, examples=examples, **kw)


# -- create / update ------------------------------------------------------------------------------


def test_create_returns_a_private_versioned_classifier(registry, store, settings):
    # Given examples of two labels; When training without an id
    result = make(registry, store, settings)
    # Then a private classifier owned by the caller exists at version 1
    assert result.created and result.version == 1 and result.num_samples == 4
    assert result.labels == ("sports", "politics") and result.access == "private"
    assert result.total_tokens == sum(len(t.split()) + 2 for t, _ in SPORTS + POLITICS)
    meta = get_classifier(store, OWNER, result.classifier_id)
    assert (meta.owner, meta.model, meta.train_count) == ("tenant-a", "fake-model", 1)


def test_create_validation(registry, store, settings):
    with pytest.raises(InvalidLabels):
        make(registry, store, settings, examples=SPORTS)  # one label
    with pytest.raises(InvalidInput):
        make(registry, store, settings, examples=[])
    with pytest.raises(InvalidInput):
        make(registry, store, settings, examples=[("  ", "a"), ("x", "b")])
    with pytest.raises(InvalidLabels):
        make(registry, store, settings, examples=[("x", ""), ("y", "b")])
    with pytest.raises(InvalidInput):
        make(registry, store, settings, num_iters=0)
    assert store.writes == []


def test_label_and_classifier_limits(registry, store, settings):
    limited = settings.model_copy(update={"max_labels": 3, "max_classifiers_per_key": 2})
    # Given a classifier with 2 labels
    first = make(registry, store, limited)
    # When labels beyond the limit arrive (an update's total, a new classifier's batch), Then
    # LabelLimitExceeded (Jina's 400 INPUT_LABEL_LIMIT_EXCEEDED, as on /v1/classify)
    with pytest.raises(LabelLimitExceeded):
        train(registry, store, limited, OWNER, classifier_id=first.classifier_id,
              examples=[("a", "x"), ("b", "y")])  # fmt: skip
    with pytest.raises(LabelLimitExceeded):
        make(registry, store, limited, examples=[("a", "w"), ("b", "x"), ("c", "y"), ("d", "z")])
    # And an update whose batch alone is over the limit is refused before any embedding
    embedder = registry.get(registry.resolve_name(None)).inner
    embedder.calls.clear()
    with pytest.raises(LabelLimitExceeded):
        train(registry, store, limited, OWNER, classifier_id=first.classifier_id,
              examples=[("a", "w"), ("b", "x"), ("c", "y"), ("d", "z")])  # fmt: skip
    assert embedder.calls == []
    # And the per-key classifier limit holds
    make(registry, store, limited)
    with pytest.raises(ResourceLimitExceeded):
        make(registry, store, limited)


def test_update_extends_labels_and_accumulates(registry, store, settings):
    # Given a classifier
    created = make(registry, store, settings)
    before = load_learner(store.load_weights(created.classifier_id, 1))
    # When it learns a batch with a new label and changes access
    batch = [("new phone released with a faster chip", "tech"), ("goal in extra time", "sports")]
    result = train(
        registry, store, settings, OWNER, classifier_id=created.classifier_id, access="public", examples=batch
    )
    # Then labels are appended, counters and version advance, access changed
    assert (result.created, result.version, result.num_samples) == (False, 2, 6)
    assert result.labels == ("sports", "politics", "tech") and result.access == "public"
    after = load_learner(store.load_weights(created.classifier_id, 2))
    assert after.labels == ["sports", "politics", "tech"]
    assert after.pa.weights.shape == (3, 64) and before.pa.weights.shape == (2, 64)
    assert after.num_samples == 6 and before.num_samples == 4
    meta = get_classifier(store, OWNER, created.classifier_id)
    assert (meta.version, meta.num_samples, meta.train_count, meta.access) == (2, 6, 2, "public")


def test_update_keeps_access_when_not_given(registry, store, settings):
    created = make(registry, store, settings, access="public")
    result = train(registry, store, settings, OWNER, classifier_id=created.classifier_id, examples=SPORTS)
    assert result.access == "public"


def test_model_mismatch(registry, store, settings):
    created = make(registry, store, settings)
    with pytest.raises(ModelMismatch):
        train(registry, store, settings, OWNER, classifier_id=created.classifier_id, model="other-model",
              examples=SPORTS)  # fmt: skip
    with pytest.raises(ModelMismatch):
        classify_with_classifier(registry, store, settings, OWNER, classifier_id=created.classifier_id,
                                 texts=["x"], model="other-model")  # fmt: skip
    # the canonical name is accepted
    train(
        registry,
        store,
        settings,
        OWNER,
        classifier_id=created.classifier_id,
        model="fake-model",
        examples=SPORTS,
    )


# -- visibility -----------------------------------------------------------------------------------


def test_non_owners_see_nothing_except_classify_on_public(registry, store, settings):
    private = make(registry, store, settings).classifier_id
    public = make(registry, store, settings, access="public").classifier_id
    for cid in (private, public, "unknown-id"):
        with pytest.raises(ResourceNotFound):
            train(registry, store, settings, OTHER, classifier_id=cid, examples=SPORTS)
        with pytest.raises(ResourceNotFound):
            get_classifier(store, OTHER, cid)
        with pytest.raises(ResourceNotFound):
            delete_classifier(store, OTHER, cid)
    with pytest.raises(ResourceNotFound):
        classify_with_classifier(registry, store, settings, OTHER, classifier_id=private, texts=["goal"])
    result = classify_with_classifier(registry, store, settings, OTHER, classifier_id=public, texts=["goal"])
    labels, probs = result.labels, result.probabilities
    assert labels == ["sports", "politics"] and probs.shape == (1, 2)
    assert list_classifiers(store, OTHER) == []
    assert [m.id for m in list_classifiers(store, OWNER)] == [private, public]


# -- classify -------------------------------------------------------------------------------------


def test_classify_predicts_learned_labels(registry, store, settings):
    # Given a trained classifier
    cid = make(registry, store, settings).classifier_id
    # When classifying inputs sharing words with each label's examples
    result = classify_with_classifier(
        registry,
        store,
        settings,
        OWNER,
        classifier_id=cid,
        texts=["a late goal by the striker", "budget bill in parliament"],
    )
    labels, probs, tokens = result.labels, result.probabilities, result.total_tokens
    # Then each is assigned its label, rows are distributions, and tokens are counted
    assert [labels[i] for i in probs.argmax(axis=1)] == ["sports", "politics"]
    assert probs.dtype == np.float32
    assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert tokens == (6 + 2) + (4 + 2)
    assert get_classifier(store, OWNER, cid).classify_count == 1


def test_the_same_examples_train_the_same_classifier_whatever_its_id(registry, store, settings):
    # Given the same examples sent by two callers, in another order and over two calls for the second
    first = make(registry, store, settings).classifier_id
    second = make(registry, store, settings, examples=[POLITICS[1], SPORTS[0]]).classifier_id
    make(registry, store, settings, examples=[SPORTS[1], POLITICS[0]], classifier_id=second)
    third = make(registry, store, settings, examples=SPORTS + POLITICS).classifier_id
    texts = ["a late goal by the striker", "budget bill in parliament", "an election goal"]

    def probabilities(cid: str) -> np.ndarray:
        result = classify_with_classifier(registry, store, settings, OWNER, classifier_id=cid, texts=texts)
        order = [list(result.labels).index(label) for label in ("sports", "politics")]
        return result.probabilities[:, order]

    # When each classifies the same texts
    # Then one call with the same examples under another id gives exactly the same answer
    assert first != third
    assert_allclose(probabilities(first), probabilities(third), rtol=0, atol=0)
    # And the examples split over two calls agree on every prediction
    assert (probabilities(first).argmax(axis=1) == probabilities(second).argmax(axis=1)).all()


class CountingStore(MemoryClassifierStore):
    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def get_meta(self, classifier_id):
        self.calls.append("get_meta")
        return super().get_meta(classifier_id)

    def load_weights(self, classifier_id, version):
        self.calls.append("load_weights")
        return super().load_weights(classifier_id, version)


def test_classify_reads_only_metadata_once_weights_are_cached(registry, settings):
    # Given a classifier trained in another process (cold cache)
    store = CountingStore()
    cid = make(registry, store, settings).classifier_id
    fewshot.WEIGHTS_CACHE.clear()
    store.calls.clear()
    # When classifying twice
    for _ in range(2):
        classify_with_classifier(registry, store, settings, OWNER, classifier_id=cid, texts=["goal"])
    # Then weights were loaded once, metadata read per request
    assert store.calls == ["get_meta", "load_weights", "get_meta"]


def test_classify_validation_and_deleted(registry, store, settings):
    cid = make(registry, store, settings).classifier_id
    with pytest.raises(InvalidInput):
        classify_with_classifier(registry, store, settings, OWNER, classifier_id=cid, texts=[])
    delete_classifier(store, OWNER, cid)
    assert len(fewshot.WEIGHTS_CACHE) == 0
    with pytest.raises(ResourceNotFound):
        classify_with_classifier(registry, store, settings, OWNER, classifier_id=cid, texts=["goal"])
    with pytest.raises(ResourceNotFound):
        delete_classifier(store, OWNER, cid)


# -- concurrency ----------------------------------------------------------------------------------


class AlwaysConflicting(MemoryClassifierStore):
    commits = 0

    def commit_version(self, meta, weights, expected_version):
        self.commits += 1
        raise VersionConflict("busy")


def test_gives_up_with_conflict_after_max_attempts(registry, settings, monkeypatch):
    monkeypatch.setattr(fewshot.time, "sleep", lambda s: None)
    store = AlwaysConflicting()
    cid = make(registry, store, settings).classifier_id
    with pytest.raises(Conflict):
        train(registry, store, settings, OWNER, classifier_id=cid, examples=SPORTS, max_attempts=3)
    assert store.commits == 3
    assert get_classifier(store, OWNER, cid).version == 1


class InterleavingStore(MemoryClassifierStore):
    """Lets another writer commit between our read and our first commit."""

    interloper = None

    def commit_version(self, meta, weights, expected_version):
        if self.interloper is not None:
            run, self.interloper = self.interloper, None
            run()
        super().commit_version(meta, weights, expected_version)


def test_conflict_reloads_and_reapplies_the_batch(registry, settings):
    # Given a classifier and a concurrent writer that commits first
    store = InterleavingStore()
    cid = make(registry, store, settings).classifier_id
    store.interloper = lambda: train(registry, store, settings, OWNER, classifier_id=cid,
                                     examples=[("chip", "tech")])  # fmt: skip
    # When our batch conflicts
    result = train(registry, store, settings, OWNER, classifier_id=cid, examples=SPORTS)
    # Then it was re-applied on top of the other writer's version: nothing lost
    assert (result.version, result.num_samples) == (3, 4 + 1 + 2)
    assert result.labels == ("sports", "politics", "tech")
    learner = load_learner(store.load_weights(cid, 3))
    assert learner.labels == ["sports", "politics", "tech"]
    assert learner.num_samples == 7
    assert learner.pa.steps == fewshot_default_iters() * 7


def fewshot_default_iters() -> int:
    return MixtureLearner(1).num_iters


# -- privacy --------------------------------------------------------------------------------------


def _npz_contents(blob: bytes) -> bytes:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        return b"".join(npz[name].tobytes() for name in npz.files)


def test_no_example_text_reaches_any_store(registry, store, settings):
    # Given examples whose texts carry unique markers
    texts = [f"zqmarker{i} some words here" for i in range(6)]
    examples = list(zip(texts, ["alpha", "beta", "alpha", "beta", "gamma", "gamma"], strict=True))
    # When creating, updating and classifying
    cid = make(registry, store, settings, examples=examples[:4]).classifier_id
    train(registry, store, settings, OWNER, classifier_id=cid, examples=examples[4:])
    classify_with_classifier(registry, store, settings, OWNER, classifier_id=cid, texts=["zqmarkerclassify"])
    # Then everything written (metadata, raw and decompressed weights) holds no example text
    written = b""
    for kind, payload in store.writes:
        if kind == "weights":
            written += payload + _npz_contents(payload)
        else:
            written += payload.model_dump_json().encode()
    assert b"gamma" in written and b"alpha" in written  # the inspection sees labels...
    assert b"zqmarker" not in written  # ...but no example text
    assert "zqmarker" not in json.dumps([str(w) for w in store.writes])


# -- cache ----------------------------------------------------------------------------------------


def test_weights_cache_is_bounded_lru():
    cache = WeightsCache(maxsize=2)
    learners = [MixtureLearner(4) for _ in range(3)]
    cache.put("a", 1, learners[0])
    cache.put("b", 1, learners[1])
    assert cache.get("a", 1) is learners[0]  # a is now most recent
    cache.put("c", 1, learners[2])
    assert cache.get("b", 1) is None and cache.get("a", 1) is learners[0] and len(cache) == 2
    cache.evict("a")
    assert cache.get("a", 1) is None


# -- learner semantics through the service ---------------------------------------------------------


def _scores(registry, store, settings, cid, texts):
    return classify_with_classifier(
        registry, store, settings, OWNER, classifier_id=cid, texts=texts
    ).probabilities


def test_num_iters_sets_how_strongly_a_batch_is_learned(registry, store, settings):
    # Given two identical classifiers
    texts = ["the striker scored a goal", "parliament passed the budget bill", "a new chip"]
    ids = [make(registry, store, settings).classifier_id for _ in range(2)]
    before = [_scores(registry, store, settings, cid, texts) for cid in ids]
    # When the same batch (labels swapped against the first one) is sent with num_iters 2 and 30
    flipped = [(t, "politics") for t, _ in SPORTS] + [(t, "sports") for t, _ in POLITICS]
    moved = []
    for cid, iters, old in zip(ids, (2, 30), before, strict=True):
        train(registry, store, settings, OWNER, classifier_id=cid, examples=flipped, num_iters=iters)
        moved.append(float(np.abs(_scores(registry, store, settings, cid, texts) - old).sum()))
    # Then 30 moves the predictions more than 2
    assert moved[1] > moved[0] > 0


def test_a_classifier_stored_in_format_one_keeps_classifying_and_training(registry, store, settings):
    # Given a classifier whose version 1 was stored by the previous release (a bare PA learner)
    from labelwise.learning.pa import PALearner

    created = make(registry, store, settings)
    embedder = registry.get(None)
    pa = PALearner(embedder.manifest.dimension, c=0.1, prior_strength=20.0)
    pa.add_labels(["sports", "politics"], fewshot.label_vectors(embedder, ["sports", "politics"]))
    batch = embedder.embed([t for t, _ in SPORTS + POLITICS], "input")
    pa.partial_fit(batch.vectors, [lab for _, lab in SPORTS + POLITICS], seed=1)
    store._weights[created.classifier_id][1] = pa.to_bytes()
    fewshot.WEIGHTS_CACHE.clear()
    # When it classifies, then learns a batch
    texts = [t for t, _ in SPORTS + POLITICS]
    old = _scores(registry, store, settings, created.classifier_id, texts)
    result = train(registry, store, settings, OWNER, classifier_id=created.classifier_id, examples=SPORTS)
    # Then it ranks like the old learner, and the new version is stored in the current format
    assert list(old.argmax(axis=1)) == list(pa.decision_function(batch.vectors).argmax(axis=1))
    assert result.version == 2
    assert load_learner(store.load_weights(created.classifier_id, 2)).num_samples == len(SPORTS)
