"""What an upload is classified with, and whose it is.

Configuration comes from the object's user metadata (``classifier-id``; or ``labels``, a JSON list,
with optional ``model``), else from the path convention ``uploads/<classifier_id>/...``. The uploader
is the API key named by the ``api-key-id`` metadata; without one, only zero-shot labels and public
classifiers can be used. Classification itself is the library's: zero-shot with
:mod:`labelwise.classify.zeroshot` and the process's label cache, few-shot with
:func:`labelwise.classify.fewshot.classify_with_classifier` (which re-checks visibility per batch).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from labelwise.classify import fewshot
from labelwise.classify.fewshot import PinnedLearner
from labelwise.classify.ranking import LabelScore, RankedInput, rank
from labelwise.classify.zeroshot import (
    UNGROUPED,
    GroupScores,
    normalize_label_groups,
    score_groups,
    zeroshot_label_vectors,
)
from labelwise.services import Services
from labelwise.storage.ports import ApiKeyRecord
from labelwise.uploads.models import UploadConfig
from labelwise.uploads.readers import UnusableUpload

#: User metadata names (S3 lower-cases them; ``x-amz-meta-`` prefix already removed).
META_CLASSIFIER_ID = "classifier-id"
META_LABELS = "labels"
META_MODEL = "model"
META_API_KEY_ID = "api-key-id"

#: The caller of an upload without ``api-key-id``: owns nothing, may use public classifiers.
ANONYMOUS = ApiKeyRecord(
    key_id="", tenant_id="", name="upload without api-key-id", created_at=datetime(1970, 1, 1, tzinfo=UTC)
)


def config_from_upload(key: str, metadata: Mapping[str, str], prefix: str = "uploads/") -> UploadConfig:
    """The job configuration of an uploaded object; :class:`UnusableUpload` when there is none or it
    is contradictory. Metadata wins over the path convention."""
    meta = {k.lower(): v.strip() for k, v in metadata.items()}
    api_key_id = meta.get(META_API_KEY_ID) or None
    model = meta.get(META_MODEL) or None
    classifier_id = meta.get(META_CLASSIFIER_ID) or None
    raw_labels = meta.get(META_LABELS) or None
    if classifier_id and raw_labels:
        raise UnusableUpload("Set either `classifier-id` or `labels` metadata, not both.")
    if raw_labels:
        try:
            labels = json.loads(raw_labels)
        except json.JSONDecodeError as exc:
            raise UnusableUpload(
                f'The `labels` metadata is not JSON ({exc.msg}); send a list like ["billing", "bug"].'
            ) from exc
        if not (
            (isinstance(labels, list) and all(isinstance(x, str) for x in labels))
            or (
                isinstance(labels, dict)
                and all(isinstance(g, list) and all(isinstance(x, str) for x in g) for g in labels.values())
            )
        ):
            raise UnusableUpload('The `labels` metadata must be a JSON list of strings, like ["a", "b"].')
        return UploadConfig(mode="zero-shot", labels=labels, model=model, api_key_id=api_key_id)
    if classifier_id:
        return UploadConfig(mode="few-shot", classifier_id=classifier_id, model=model, api_key_id=api_key_id)
    rest = key[len(prefix) :] if key.startswith(prefix) else key
    folder, _, name = rest.partition("/")
    if folder and name:
        return UploadConfig(
            mode="few-shot", classifier_id=folder, model=model, api_key_id=api_key_id, source="path"
        )
    raise UnusableUpload(
        "No classification configured: set the `classifier-id` metadata, or `labels` (a JSON list) with an"
        " optional `model`, or upload under uploads/<classifier_id>/."
    )


def resolve_caller(services: Services, config: UploadConfig) -> ApiKeyRecord:
    """The uploader's key record (by public key id), or :data:`ANONYMOUS` without one."""
    if config.api_key_id is None:
        return ANONYMOUS
    record = services.keys.get(config.api_key_id)
    if record is None or record.revoked:
        raise UnusableUpload(f"The `api-key-id` '{config.api_key_id}' is not an active API key.")
    return record


@dataclass(frozen=True)
class BatchResult:
    rows: list[dict[str, object]]  # prediction, score, predictions (in input order)
    total_tokens: int
    truncated: int


class Plan(ABC):
    """A validated way to classify texts."""

    model: str
    classifier_version: int | None = None

    @abstractmethod
    def refresh(self) -> None:
        """Re-read what may have changed since the last part (a classifier's version)."""

    @abstractmethod
    def classify(self, texts: Sequence[str]) -> BatchResult: ...


def _scores(ranked: list[LabelScore]) -> list[dict[str, object]]:
    return [{"label": s.label, "score": s.score} for s in ranked]


def _row(row: RankedInput) -> dict[str, object]:
    """``prediction``, ``score`` and ``predictions`` as ``/v1/classify`` answers them."""
    if not row.grouped:
        best = row.ranked[UNGROUPED]
        return {"prediction": best[0].label, "score": best[0].score, "predictions": _scores(best)}
    return {
        "prediction": {name: r[0].label for name, r in row.ranked.items()},
        "score": {name: r[0].score for name, r in row.ranked.items()},
        "predictions": {name: _scores(r) for name, r in row.ranked.items()},
    }


def _rows(groups: dict[str, GroupScores], truncated: list[bool]) -> list[dict[str, object]]:
    return [_row(row) for row in rank(groups, truncated)]


class ZeroShotPlan(Plan):
    def __init__(self, services: Services, config: UploadConfig) -> None:
        assert config.labels is not None
        self._services = services
        self.groups = normalize_label_groups(config.labels, services.label_limits)
        self.model = services.registry.resolve_name(config.model)

    def refresh(self) -> None:
        return None

    def classify(self, texts: Sequence[str]) -> BatchResult:
        embedder = self._services.registry.get(self.model)
        inputs = embedder.embed(list(texts), role="input")
        vectors = {
            name: zeroshot_label_vectors(self._services.label_cache, embedder, labels)[0]
            for name, labels in self.groups.items()
        }
        scores = score_groups(inputs.vectors, vectors, self.groups, embedder.manifest.temperature)
        return BatchResult(_rows(scores, inputs.truncated), inputs.total_tokens, sum(inputs.truncated))


class FewShotPlan(Plan):
    """Classify with a stored classifier. A job pins one version for the whole file (:meth:`pin`,
    with the bytes the job snapshotted from :meth:`current_weights`): parts read later still check
    visibility and the model against the current metadata, but score with the pinned weights."""

    def __init__(self, services: Services, config: UploadConfig, caller: ApiKeyRecord) -> None:
        assert config.classifier_id is not None
        self._services = services
        self._caller = caller
        self._pinned: PinnedLearner | None = None
        self.classifier_id = config.classifier_id
        self.requested_model = config.model
        self.refresh()

    def current_weights(self) -> tuple[int, bytes]:
        """The current version and its weights (what a new job pins)."""
        meta, weights = fewshot.current_weights(self._services.store, self._caller, self.classifier_id)
        return meta.version, weights

    def weights_of(self, version: int) -> bytes:
        """The stored weights of ``version``; :class:`~labelwise.errors.ResourceNotFound` once the
        store no longer keeps it (only the last two versions are kept)."""
        return self._services.store.load_weights(self.classifier_id, version)

    def pin(self, version: int, weights: bytes) -> None:
        """Score every later batch with these weights (``version``), whatever the current version."""
        temperature = self._services.registry.get(self.model).manifest.temperature
        self._pinned = fewshot.learner_from_weights(weights, temperature)
        self.classifier_version = version

    def refresh(self) -> None:
        # Early, friendly check for a file-level error; classify_with_classifier re-checks per batch.
        meta = self._services.store.get_meta(self.classifier_id)
        if meta is None or not (meta.owner == self._caller.tenant_id or meta.access == "public"):
            whose = f"key {self._caller.key_id}" if self._caller.key_id else "uploads without `api-key-id`"
            raise UnusableUpload(
                f"Classifier '{self.classifier_id}' does not exist or is not usable by {whose}."
            )
        if self.requested_model is not None:
            requested = self._services.registry.resolve_name(self.requested_model)
            if requested != meta.model:
                raise UnusableUpload(
                    f"Classifier '{self.classifier_id}' uses model '{meta.model}',"
                    f" not '{self.requested_model}'."
                )
        self.model = meta.model
        if self._pinned is None:
            self.classifier_version = meta.version

    def classify(self, texts: Sequence[str]) -> BatchResult:
        s = self._services
        result = fewshot.classify_with_classifier(
            s.registry, s.store, s.settings, self._caller,
            classifier_id=self.classifier_id, texts=texts, model=self.requested_model, pinned=self._pinned,
        )  # fmt: skip
        groups = {UNGROUPED: GroupScores(labels=list(result.labels), probabilities=result.probabilities)}
        return BatchResult(_rows(groups, result.truncated), result.total_tokens, sum(result.truncated))


def prepare(services: Services, config: UploadConfig, caller: ApiKeyRecord) -> Plan:
    """A plan for ``config``; raises :class:`UnusableUpload`, or the library's own
    :class:`~labelwise.errors.InvalidInput` subclasses (bad labels, unknown model)."""
    if config.mode == "zero-shot":
        return ZeroShotPlan(services, config)
    return FewShotPlan(services, config, caller)
