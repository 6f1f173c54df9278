"""Few-shot classifiers: train (create / update) and classify with learned weights.

What the HTTP routes call. Training examples are embedded and learned from, never stored: a
classifier is its :class:`~labelwise.storage.ports.ClassifierMeta` plus the serialised
:class:`~labelwise.learning.mixture.MixtureLearner` of each version (aggregates only: label counts
and embedding sums, ridge's second moments, PA's weight rows and the experts' running losses), or,
created with ``multi_label``, its :class:`~labelwise.learning.multilabel.MultiLabelLearner` (rows,
biases and calibration counts per label).

Updates are optimistic: read meta + weights of version ``v``, learn the batch, commit ``v + 1``
conditionally on ``v``; on :class:`~labelwise.storage.ports.VersionConflict` reload and re-apply
(with jittered backoff), at most ``max_attempts`` times, then raise
:class:`labelwise.errors.Conflict`.

Visibility: only the owner may train, read, list or delete a classifier; a ``public`` one may also
be *classified* with by any valid key. Anything a caller may not see is
:class:`~labelwise.errors.ResourceNotFound`, exactly like an unknown id.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from labelwise.classify import multilabel
from labelwise.classify.budget import check_request_tokens, count_tokens
from labelwise.classify.labels import distinctive_labels
from labelwise.classify.lru import LRU
from labelwise.embedding.port import Embedder, Truncate
from labelwise.errors import (
    Conflict,
    InputLimitExceeded,
    InvalidInput,
    InvalidLabels,
    LabelLimitExceeded,
    ModelMismatch,
    ResourceLimitExceeded,
    ResourceNotFound,
)
from labelwise.learning.load import Learner, load_any, peek_kind
from labelwise.learning.mixture import MixtureLearner
from labelwise.learning.multilabel import KIND as MULTILABEL_KIND
from labelwise.learning.multilabel import MultiLabelLearner
from labelwise.learning.pa import seed_for
from labelwise.settings import Settings
from labelwise.storage.ports import (
    Access,
    ApiKeyRecord,
    ClassifierMeta,
    ClassifierStore,
    VersionConflict,
    utcnow,
)

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

#: Conditional-commit attempts per train call before :class:`Conflict`.
MAX_ATTEMPTS = 8
#: Upper bound of the jittered backoff between attempts, seconds.
MAX_BACKOFF_S = 0.2
#: Learned classifiers kept in memory per process, keyed by (id, version).
WEIGHTS_CACHE_SIZE = 64

T = TypeVar("T")

#: A training example's target: one label, or (multi-label classifiers) the set of its labels.
Target = str | Sequence[str]


class EmbedderRegistry(Protocol):
    """What this module needs from :class:`labelwise.embedding.registry.ModelRegistry`."""

    def resolve_name(self, requested: str | None) -> str: ...

    def get(self, requested: str | None) -> Embedder: ...


@dataclass(frozen=True)
class FewShotScores:
    labels: list[str]
    probabilities: FloatArray  # (n_inputs, n_labels), rows sum to 1 (unless multi_label)
    total_tokens: int
    truncated: list[bool]
    model: str
    multi_label: bool = False  # independent per-label probabilities (a multi-label classifier)


@dataclass(frozen=True)
class TrainResult:
    classifier_id: str
    created: bool
    version: int
    num_samples: int  # total learned by the classifier so far
    labels: tuple[str, ...]
    access: Access
    total_tokens: int  # input tokens embedded by this call
    multi_label: bool = False

    @staticmethod
    def of(
        meta: ClassifierMeta, *, created: bool, total_tokens: int, multi_label: bool = False
    ) -> TrainResult:
        """The result of a training call that left the classifier at ``meta``."""
        return TrainResult(
            meta.id, created, meta.version, meta.num_samples, meta.labels, meta.access, total_tokens,
            multi_label,
        )  # fmt: skip


class WeightsCache:
    """Bounded, thread-safe LRU of deserialised learners keyed by (classifier id, version).

    Versions are immutable, so entries never go stale; a newer version is simply another key.
    """

    def __init__(self, maxsize: int = WEIGHTS_CACHE_SIZE) -> None:
        self._lru: LRU[tuple[str, int], Learner] = LRU(maxsize)

    @property
    def maxsize(self) -> int:
        return self._lru.maxsize

    def get(self, classifier_id: str, version: int) -> Learner | None:
        return self._lru.get((classifier_id, version))

    def put(self, classifier_id: str, version: int, learner: Learner) -> None:
        self._lru.put((classifier_id, version), learner)

    def evict(self, classifier_id: str) -> None:
        self._lru.evict(lambda key: key[0] == classifier_id)

    def clear(self) -> None:
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._lru)


#: The process-wide cache used by :func:`classify_with_classifier`.
WEIGHTS_CACHE = WeightsCache()


# -- validation -----------------------------------------------------------------------------------


def _labels_of(target: Target) -> list[str]:
    return [target] if isinstance(target, str) else list(target)


def _validate_examples(examples: Sequence[tuple[str, Target]], settings: Settings) -> list[str]:
    """Check the batch; returns its distinct labels in first-seen order. A target may be one label
    or a list of labels (possibly empty: an example of none of the labels)."""
    if not examples:
        raise InvalidInput("`input` must contain at least one example.")
    if len(examples) > settings.max_inputs:
        raise InputLimitExceeded(
            f"`input` has {len(examples)} examples; at most {settings.max_inputs} are allowed."
        )
    distinct: dict[str, None] = {}
    for i, (text, target) in enumerate(examples):
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"`input[{i}].text` must be non-empty text.")
        for label in _labels_of(target):
            if not isinstance(label, str) or not label.strip():
                raise InvalidLabels(f"`input[{i}].label` must be non-empty text.")
            if len(label) > settings.max_label_chars:
                raise InvalidLabels(
                    f"`input[{i}].label` is {len(label)} characters long;"
                    f" at most {settings.max_label_chars} are allowed."
                )
            distinct.setdefault(label)
    # before any embedding; an update's total is checked once the classifier is read
    if len(distinct) > settings.max_labels:
        raise LabelLimitExceeded(
            f"`input` has {len(distinct)} labels; at most {settings.max_labels} are allowed."
        )
    return list(distinct)


def _targets_for(learner: Learner, examples: Sequence[tuple[str, Target]]) -> list[Target]:
    """The batch's targets as ``learner`` takes them: label lists for a multi-label learner, single
    labels otherwise (:class:`InvalidInput` for a list sent to a single-label classifier)."""
    if isinstance(learner, MultiLabelLearner):
        return [tuple(_labels_of(target)) for _, target in examples]
    if any(not isinstance(target, str) for _, target in examples):
        raise InvalidInput(
            "This classifier is single-label: send `label`, or create one with `multi_label: true`."
        )
    return [target for _, target in examples]


def _learn(
    learner: Learner, vectors: FloatArray, targets: list[Target], seed: int, num_iters: int | None
) -> None:
    if isinstance(learner, MultiLabelLearner):
        learner.partial_fit(vectors, [list(_labels_of(t)) for t in targets], seed=seed, num_iters=num_iters)
    else:
        # The mixture seeds itself from the batch's content: the same examples train the same
        # classifier whatever its id (MixtureLearner.partial_fit, content_seed).
        learner.partial_fit(vectors, [str(t) for t in targets], num_iters=num_iters)


def _check_label_count(count: int, settings: Settings) -> None:
    """Jina's 400 INPUT_LABEL_LIMIT_EXCEEDED (as on /v1/classify) past ``max_labels`` labels."""
    if count > settings.max_labels:
        raise LabelLimitExceeded(
            f"A classifier may have at most {settings.max_labels} labels; this request would make {count}."
        )


def _visible(
    meta: ClassifierMeta | None, caller: ApiKeyRecord, *, for_classify: bool = False
) -> ClassifierMeta:
    """The meta if ``caller`` may use it (owner, or any key classifying with a public one)."""
    if meta is None:
        raise ResourceNotFound("Classifier not found.")
    if meta.owner == caller.tenant_id or (for_classify and meta.access == "public"):
        return meta
    raise ResourceNotFound("Classifier not found.")


# -- train ----------------------------------------------------------------------------------------


def new_learner(dim: int, zero_shot_temperature: float) -> MixtureLearner:
    """An empty learner of a new classifier: the default experts, zero-shot at the model's temperature."""
    return MixtureLearner(dim, zero_shot_temperature=zero_shot_temperature)


def label_vectors(embedder: Embedder, labels: Sequence[str]) -> FloatArray:
    """The label embeddings the learner's zero-shot and class-mean experts start from, for the
    classifier's whole label set: the distinctive part of each label (as ``/v1/classify`` embeds it),
    so ``"positive review"`` / ``"negative review"`` cannot invert the prior."""
    if not labels:
        return np.zeros((0, embedder.manifest.dimension), dtype=np.float32)
    return np.asarray(embedder.embed(distinctive_labels(labels), "label").vectors, dtype=np.float32)


def train(
    embedder_registry: EmbedderRegistry,
    store: ClassifierStore,
    settings: Settings,
    caller: ApiKeyRecord,
    *,
    examples: Sequence[tuple[str, Target]],
    classifier_id: str | None = None,
    model: str | None = None,
    access: Access | None = None,
    num_iters: int | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    max_tokens: int | None = None,
    multi_label: bool = False,
) -> TrainResult:
    """Create a classifier (``classifier_id`` None) or update one with ``(text, label)`` examples.

    With ``multi_label`` a new classifier scores each label independently
    (:class:`~labelwise.learning.multilabel.MultiLabelLearner`) and a target may be a list of labels;
    on update the stored classifier's kind decides.

    Raises :class:`InvalidInput` / :class:`InvalidLabels` / :class:`InputLimitExceeded` for a bad
    batch, :class:`LabelLimitExceeded` past ``max_labels`` labels (the batch's, or an update's
    total), :class:`ResourceLimitExceeded` past ``max_classifiers_per_key`` classifiers,
    :class:`ModelMismatch` when ``model`` names another model than the classifier's,
    :class:`ResourceNotFound` for an unknown or foreign classifier, :class:`Conflict` when
    ``max_attempts`` conditional commits all lost to concurrent writers, and
    :class:`~labelwise.errors.TokenLimitExceeded` (before embedding) past ``max_tokens`` (None: no cap).
    """
    if num_iters is not None and num_iters < 1:
        raise InvalidInput("`num_iters` must be at least 1.")
    batch_labels = _validate_examples(examples, settings)
    if classifier_id is None:
        return _create(
            embedder_registry, store, settings, caller, examples, batch_labels, model, access, num_iters,
            max_tokens, multi_label,
        )  # fmt: skip
    return _update(
        embedder_registry, store, settings, caller, classifier_id, examples, batch_labels, model, access,
        num_iters, max_attempts, max_tokens,
    )  # fmt: skip


def _check_examples_tokens(
    embedder: Embedder, examples: Sequence[tuple[str, Target]], labels: Sequence[str], max_tokens: int | None
) -> None:
    if max_tokens:
        check_request_tokens(
            count_tokens(embedder, [text for text, _ in examples], "input")
            + count_tokens(embedder, labels, "label"),
            max_tokens,
        )


def _create(
    registry: EmbedderRegistry,
    store: ClassifierStore,
    settings: Settings,
    caller: ApiKeyRecord,
    examples: Sequence[tuple[str, Target]],
    labels: list[str],
    model: str | None,
    access: Access | None,
    num_iters: int | None,
    max_tokens: int | None,
    multi_label: bool = False,
) -> TrainResult:
    if multi_label and not labels:
        raise InvalidLabels("A new multi-label classifier needs examples of at least 1 label.")
    if not multi_label and len(labels) < 2:
        raise InvalidLabels("A new classifier needs examples of at least 2 distinct labels.")
    if store.count_by_owner(caller.tenant_id) >= settings.max_classifiers_per_key:
        raise ResourceLimitExceeded(
            f"At most {settings.max_classifiers_per_key} classifiers are allowed per key."
        )
    model_name = registry.resolve_name(model)
    embedder = registry.get(model_name)
    _check_examples_tokens(embedder, examples, labels, max_tokens)
    batch = embedder.embed([text for text, _ in examples], "input")
    classifier_id = str(uuid.uuid4())
    learner: Learner = (
        multilabel.new_learner(embedder.manifest.dimension, model_name)
        if multi_label
        else new_learner(embedder.manifest.dimension, embedder.manifest.temperature)
    )
    learner.add_labels(labels, label_vectors(embedder, labels))
    targets = _targets_for(learner, examples)
    _learn(learner, batch.vectors, targets, seed_for(classifier_id, 1), num_iters)
    now = utcnow()
    meta = ClassifierMeta(
        id=classifier_id,
        owner=caller.tenant_id,
        model=model_name,
        labels=tuple(learner.labels),
        access=access or "private",
        num_samples=len(examples),
        version=1,
        created_at=now,
        updated_at=now,
        train_count=1,
        multi_label=multi_label,
    )
    store.create(meta, learner.to_bytes())
    WEIGHTS_CACHE.put(classifier_id, 1, learner)
    return TrainResult.of(meta, created=True, total_tokens=batch.total_tokens, multi_label=multi_label)


def _update(
    registry: EmbedderRegistry,
    store: ClassifierStore,
    settings: Settings,
    caller: ApiKeyRecord,
    classifier_id: str,
    examples: Sequence[tuple[str, Target]],
    batch_labels: list[str],
    model: str | None,
    access: Access | None,
    num_iters: int | None,
    max_attempts: int,
    max_tokens: int | None,
) -> TrainResult:
    meta = _visible(store.get_meta(classifier_id), caller)
    if model is not None and registry.resolve_name(model) != meta.model:
        raise ModelMismatch(f"Classifier {classifier_id} uses model '{meta.model}', not '{model}'.")
    embedder = registry.get(meta.model)
    _check_examples_tokens(embedder, examples, batch_labels, max_tokens)
    batch = embedder.embed([text for text, _ in examples], "input")
    vectors_of: dict[tuple[str, ...], FloatArray] = {}

    for attempt in range(max_attempts):
        if attempt:
            time.sleep(random.uniform(0, min(MAX_BACKOFF_S, 0.005 * 2**attempt)))
            meta = _visible(store.get_meta(classifier_id), caller)
        new_labels = [label for label in batch_labels if label not in meta.labels]
        _check_label_count(len(meta.labels) + len(new_labels), settings)
        learner = _learn_batch(
            store, embedder, meta, new_labels, vectors_of, batch.vectors, examples, num_iters
        )
        if learner is None:
            continue  # replaced (and collected) since we read the meta: reload
        updated = _next_meta(meta, learner, access, len(examples))
        try:
            store.commit_version(updated, learner.to_bytes(), expected_version=meta.version)
        except VersionConflict:
            logger.info("version conflict on classifier %s (attempt %d)", classifier_id, attempt + 1)
            continue
        WEIGHTS_CACHE.put(classifier_id, updated.version, learner)
        return TrainResult.of(
            updated,
            created=False,
            total_tokens=batch.total_tokens,
            multi_label=isinstance(learner, MultiLabelLearner),
        )
    raise Conflict(f"Classifier {classifier_id} is being updated concurrently; retry the request.")


def _next_meta(
    meta: ClassifierMeta, learner: Learner, access: Access | None, n_examples: int
) -> ClassifierMeta:
    """``meta`` after one more training batch of ``n_examples`` learned into ``learner``."""
    return meta.model_copy(
        update={
            "labels": tuple(learner.labels),
            "access": access or meta.access,
            "num_samples": meta.num_samples + n_examples,
            "version": meta.version + 1,
            "updated_at": utcnow(),
            "train_count": meta.train_count + 1,
            "multi_label": isinstance(learner, MultiLabelLearner),
        }
    )


def _learn_batch(
    store: ClassifierStore,
    embedder: Embedder,
    meta: ClassifierMeta,
    new_labels: list[str],
    vectors_of: dict[tuple[str, ...], FloatArray],
    vectors: FloatArray,
    examples: Sequence[tuple[str, Target]],
    num_iters: int | None,
) -> Learner | None:
    """The learner of ``meta``'s version (whichever kind its header names) with ``new_labels`` added
    and the batch learned (seeded by the next version), or None when that version's weights are
    gone. ``examples`` give the batch's targets in the learner's form (:func:`_targets_for`).
    ``vectors_of`` caches the label embeddings per label list across attempts."""
    try:
        learner = load_any(
            store.load_weights(meta.id, meta.version),
            zero_shot_temperature=embedder.manifest.temperature,
        )
    except ResourceNotFound:
        return None
    targets = _targets_for(learner, examples)
    all_labels = (*meta.labels, *new_labels)
    if all_labels not in vectors_of:
        vectors_of[all_labels] = label_vectors(embedder, all_labels)
    rows = vectors_of[all_labels]
    learner.add_labels(new_labels, rows[len(meta.labels) :])
    learner.set_label_vectors(rows)
    _learn(learner, vectors, targets, seed_for(meta.id, meta.version + 1), num_iters)
    return learner


# -- classify and CRUD ----------------------------------------------------------------------------


def _learner_for(store: ClassifierStore, meta: ClassifierMeta, zero_shot_temperature: float) -> Learner:
    learner = WEIGHTS_CACHE.get(meta.id, meta.version)
    if learner is None:
        learner = load_any(
            store.load_weights(meta.id, meta.version), zero_shot_temperature=zero_shot_temperature
        )
        WEIGHTS_CACHE.put(meta.id, meta.version, learner)
    return learner


def _at_current_version(
    store: ClassifierStore, caller: ApiKeyRecord, meta: ClassifierMeta, load: Callable[[ClassifierMeta], T]
) -> tuple[ClassifierMeta, T]:
    """``load(meta)``; when a newer version replaced ``meta``'s between the two reads (its weights
    are gone: ResourceNotFound), once more with the metadata re-read."""
    try:
        return meta, load(meta)
    except ResourceNotFound:
        meta = _visible(store.get_meta(meta.id), caller, for_classify=True)
        return meta, load(meta)


def current_weights(
    store: ClassifierStore, caller: ApiKeyRecord, classifier_id: str
) -> tuple[ClassifierMeta, bytes]:
    """The current version of a classifier ``caller`` may classify with, and that version's weights
    (what a job that must use one version throughout, like an upload, keeps)."""
    meta = _visible(store.get_meta(classifier_id), caller, for_classify=True)
    return _at_current_version(store, caller, meta, lambda m: store.load_weights(m.id, m.version))


#: One version's learner held by a caller for a whole job (:func:`learner_from_weights`, ``pinned=``).
PinnedLearner = Learner


def learner_from_weights(weights: bytes, zero_shot_temperature: float) -> PinnedLearner:
    """A learner from the bytes of one version (see :func:`current_weights`), for ``pinned=``."""
    return load_any(weights, zero_shot_temperature=zero_shot_temperature)


def classify_with_classifier(
    embedder_registry: EmbedderRegistry,
    store: ClassifierStore,
    settings: Settings,
    caller: ApiKeyRecord,
    *,
    classifier_id: str,
    texts: Sequence[str],
    model: str | None = None,
    truncate: Truncate = "pool",
    max_tokens: int | None = None,
    pinned: PinnedLearner | None = None,
) -> FewShotScores:
    """Classify ``texts`` with a stored classifier.

    Returns the classifier's labels (in its order), a ``(len(texts), len(labels))`` float32 matrix
    whose rows sum to 1 (independent per-label probabilities for a multi-label classifier), the
    tokens read and which inputs were truncated. Reads only the metadata per request; weights come
    from the process-wide :data:`WEIGHTS_CACHE`, or are ``pinned``: one version's learner held by
    the caller (:func:`learner_from_weights`), used whatever the current version is (visibility and
    the model are still checked against the current metadata). ``max_tokens`` caps the tokens of
    ``texts`` before any embedding (None: no cap; bulk uploads pass none).
    """
    check_input_count(len(texts), settings.max_inputs)
    meta = _visible(store.get_meta(classifier_id), caller, for_classify=True)
    if model is not None and embedder_registry.resolve_name(model) != meta.model:
        raise ModelMismatch(f"Classifier {classifier_id} uses model '{meta.model}', not '{model}'.")
    embedder = embedder_registry.get(meta.model)
    if max_tokens:
        check_request_tokens(count_tokens(embedder, texts, "input"), max_tokens)
    temperature = embedder.manifest.temperature
    if pinned is not None:
        learner = pinned
    else:
        meta, learner = _at_current_version(
            store, caller, meta, lambda m: _learner_for(store, m, temperature)
        )
    batch = embedder.embed(list(texts), "input", truncate=truncate)
    probabilities = learner.predict_proba(batch.vectors)
    store.record_use(classifier_id)
    return FewShotScores(
        labels=list(learner.labels),
        probabilities=probabilities,
        total_tokens=batch.total_tokens,
        truncated=list(batch.truncated),
        model=meta.model,
        multi_label=isinstance(learner, MultiLabelLearner),
    )


def check_input_count(count: int, max_inputs: int) -> None:
    """A request's ``input`` holds at least one item and at most ``max_inputs``."""
    if not count:
        raise InvalidInput("`input` must contain at least one item.")
    if count > max_inputs:
        raise InputLimitExceeded(f"`input` has {count} items; at most {max_inputs} are allowed.")


def get_classifier(store: ClassifierStore, caller: ApiKeyRecord, classifier_id: str) -> ClassifierMeta:
    """The caller's classifier; :class:`ResourceNotFound` if unknown or not theirs. A classifier
    stored before its kind was kept (``multi_label`` None) gets it from its weights' header."""
    meta = _visible(store.get_meta(classifier_id), caller)
    if meta.multi_label is not None:
        return meta
    meta, weights = _at_current_version(store, caller, meta, lambda m: store.load_weights(m.id, m.version))
    return meta.model_copy(update={"multi_label": peek_kind(weights) == MULTILABEL_KIND})


def list_classifiers(store: ClassifierStore, caller: ApiKeyRecord) -> list[ClassifierMeta]:
    """The caller's classifiers, oldest first."""
    return store.list_by_owner(caller.tenant_id)


def delete_classifier(store: ClassifierStore, caller: ApiKeyRecord, classifier_id: str) -> None:
    """Delete the caller's classifier; :class:`ResourceNotFound` if unknown or not theirs."""
    _visible(store.get_meta(classifier_id), caller)
    if not store.delete(classifier_id):
        raise ResourceNotFound("Classifier not found.")
    WEIGHTS_CACHE.evict(classifier_id)
