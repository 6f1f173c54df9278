"""What the routes call: one library function per route, from request model to response model."""

from __future__ import annotations

import numpy as np

from labelwise.api.schemas import (
    Classification,
    ClassifierInfo,
    ClassifierList,
    ClassifyRequest,
    ClassifyResponse,
    DeleteResponse,
    ImageExample,
    ImageInput,
    LabelScore,
    TextInput,
    TrainRequest,
    TrainResponse,
    Usage,
)
from labelwise.classify import fewshot
from labelwise.classify.zeroshot import UNGROUPED, GroupScores, normalize_label_groups, score_groups
from labelwise.errors import InputLimitExceeded, InvalidInput, UnsupportedInput
from labelwise.runtime import Services
from labelwise.storage.ports import ApiKeyRecord, ClassifierMeta

NO_IMAGE_MODEL = "this deployment has no image model yet. Send text."


def request_texts(raw: object, max_inputs: int) -> list[str]:
    """The request's inputs as texts, in order. Images are refused until an image model exists."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise InvalidInput("`input` must contain at least one item.")
    if len(items) > max_inputs:
        raise InputLimitExceeded(f"`input` has {len(items)} items; at most {max_inputs} are allowed.")
    texts: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, ImageInput):
            raise UnsupportedInput(f"`input[{i}]` is an image; {NO_IMAGE_MODEL}")
        text = item.text if isinstance(item, TextInput) else str(item)
        if not text.strip():
            raise InvalidInput(f"`input[{i}]` is empty; inputs must be non-empty text.")
        texts.append(text)
    return texts


def _ranked(labels: list[str], probabilities: np.ndarray) -> list[LabelScore]:
    order = np.argsort(-probabilities, kind="stable")
    return [LabelScore(label=labels[j], score=float(probabilities[j])) for j in order]


def build_classifications(groups: dict[str, GroupScores], truncated: list[bool]) -> list[Classification]:
    """Response rows: one per input; plain values for a label list, objects keyed by group otherwise."""
    rows: list[Classification] = []
    for i, was_truncated in enumerate(truncated):
        ranked = {name: _ranked(g.labels, g.probabilities[i]) for name, g in groups.items()}
        if set(ranked) == {UNGROUPED}:
            best = ranked[UNGROUPED]
            rows.append(
                Classification(
                    index=i,
                    prediction=best[0].label,
                    score=best[0].score,
                    predictions=best,
                    truncated=was_truncated,
                )
            )
        else:
            rows.append(
                Classification(
                    index=i,
                    prediction={name: r[0].label for name, r in ranked.items()},
                    score={name: r[0].score for name, r in ranked.items()},
                    predictions=ranked,
                    truncated=was_truncated,
                )
            )
    return rows


def _usage(tokens: int) -> Usage:
    return Usage(total_tokens=tokens, prompt_tokens=tokens)


def classify(request: ClassifyRequest, services: Services, caller: ApiKeyRecord) -> ClassifyResponse:
    """Zero-shot against ``request.labels``, or few-shot with ``request.classifier_id``."""
    if request.labels is not None and request.classifier_id is not None:
        raise InvalidInput("Send either `labels` (zero-shot) or `classifier_id` (few-shot), not both.")
    if request.classifier_id is not None:
        return _classify_few_shot(request, request.classifier_id, services, caller)
    if request.labels is None:
        raise InvalidInput("Send `labels` (zero-shot) or `classifier_id` (few-shot).")
    groups = normalize_label_groups(request.labels, services.label_limits)
    texts = request_texts(request.input, services.settings.max_inputs)

    embedder = services.registry.get(request.model)
    manifest = embedder.manifest
    inputs = embedder.embed(texts, role="input")
    group_vectors = {}
    label_tokens = 0
    for name, labels in groups.items():
        vectors, tokens = services.label_cache.embed(embedder, labels)
        group_vectors[name] = vectors
        label_tokens += sum(tokens)
    scores = score_groups(inputs.vectors, group_vectors, groups, manifest.temperature)
    return ClassifyResponse(
        usage=_usage(inputs.total_tokens + label_tokens),
        model=manifest.name,
        data=build_classifications(scores, inputs.truncated),
    )


def _classify_few_shot(
    request: ClassifyRequest, classifier_id: str, services: Services, caller: ApiKeyRecord
) -> ClassifyResponse:
    texts = request_texts(request.input, services.settings.max_inputs)
    result = fewshot.classify_with_classifier(
        services.registry, services.store, services.settings, caller,
        classifier_id=classifier_id, texts=texts, model=request.model,
    )  # fmt: skip
    groups = {UNGROUPED: GroupScores(labels=list(result.labels), probabilities=result.probabilities)}
    return ClassifyResponse(
        usage=_usage(result.total_tokens),
        model=result.model,
        data=build_classifications(groups, result.truncated),
    )


def train(request: TrainRequest, services: Services, caller: ApiKeyRecord) -> TrainResponse:
    """Create or update a few-shot classifier from labelled examples (never stored)."""
    examples: list[tuple[str, str]] = []
    for i, item in enumerate(request.input):
        if isinstance(item, ImageExample):
            raise UnsupportedInput(f"`input[{i}]` is an image; {NO_IMAGE_MODEL}")
        examples.append((item.text, item.label))
    result = fewshot.train(
        services.registry, services.store, services.settings, caller,
        examples=examples, classifier_id=request.classifier_id, model=request.model,
        access=request.access, num_iters=request.num_iters,
    )  # fmt: skip
    return TrainResponse(
        classifier_id=result.classifier_id,
        num_samples=result.num_samples,
        labels=list(result.labels),
        version=result.version,
        usage=_usage(result.total_tokens),
    )


def _iso(value: object) -> str | None:
    return value.isoformat() if value is not None else None  # type: ignore[attr-defined]


def classifier_info(meta: ClassifierMeta) -> ClassifierInfo:
    return ClassifierInfo(
        classifier_id=meta.id,
        model=meta.model,
        labels=list(meta.labels),
        access=meta.access,
        num_samples=meta.num_samples,
        version=meta.version,
        created_at=meta.created_at.isoformat(),
        updated_at=meta.updated_at.isoformat(),
        last_used_at=_iso(meta.last_used_at),
        classify_count=meta.classify_count,
        train_count=meta.train_count,
    )


def get_classifier(classifier_id: str, services: Services, caller: ApiKeyRecord) -> ClassifierInfo:
    return classifier_info(fewshot.get_classifier(services.store, caller, classifier_id))


def list_classifiers(services: Services, caller: ApiKeyRecord) -> ClassifierList:
    return ClassifierList(data=[classifier_info(m) for m in fewshot.list_classifiers(services.store, caller)])


def delete_classifier(classifier_id: str, services: Services, caller: ApiKeyRecord) -> DeleteResponse:
    fewshot.delete_classifier(services.store, caller, classifier_id)
    return DeleteResponse(classifier_id=classifier_id)
