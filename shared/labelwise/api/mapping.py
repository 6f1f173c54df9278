"""Request models -> the library's plain arguments, its plain results -> response models.

One function per Jina-shaped route; each parses its request model, calls one use case of
:mod:`labelwise.classify.service` / :mod:`labelwise.classify.fewshot` and builds the response model.
"""

from __future__ import annotations

import base64
import uuid

from labelwise.api.embedding_schemas import (
    EmbeddingObject,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbeddingsUsage,
)
from labelwise.api.schemas import (
    Classification,
    ClassifierInfo,
    ClassifierSummary,
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
from labelwise.classify import fewshot, service
from labelwise.classify.multilabel import DEFAULT_THRESHOLD
from labelwise.classify.ranking import LabelScore as RankedScore
from labelwise.classify.ranking import RankedInput, rank
from labelwise.classify.response_size import check_response_size, json_bytes_bound
from labelwise.classify.service import ClassifyResult, ImageRef, Item
from labelwise.classify.zeroshot import UNGROUPED
from labelwise.errors import InvalidInput
from labelwise.services import Services
from labelwise.storage.ports import ApiKeyRecord, ClassifierMeta


def request_items(raw: object) -> list[Item]:
    """The request's inputs in order, as texts and :class:`ImageRef` (validated by the library)."""
    items = raw if isinstance(raw, list) else [raw]
    out: list[Item] = []
    for item in items:
        if isinstance(item, ImageInput):
            out.append(ImageRef(item.image))
        else:
            out.append(item.text if isinstance(item, TextInput) else str(item))
    return out


def _scores(scores: list[RankedScore]) -> list[LabelScore]:
    return [LabelScore(label=s.label, score=s.score) for s in scores]


def classification(row: RankedInput) -> Classification:
    """One response row: plain values for a label list, objects keyed by group otherwise; for a
    multi-label row (``row.chosen``), ``prediction`` lists the labels at or above the threshold."""
    if not row.grouped:
        best = _scores(row.ranked[UNGROUPED])
        return Classification(
            index=row.index,
            prediction=best[0].label if row.chosen is None else row.chosen[UNGROUPED],
            score=best[0].score,
            predictions=best,
            truncated=row.truncated,
        )
    ranked = {name: _scores(r) for name, r in row.ranked.items()}
    return Classification(
        index=row.index,
        prediction={name: r[0].label for name, r in ranked.items()} if row.chosen is None else row.chosen,
        score={name: r[0].score for name, r in ranked.items()},
        predictions=ranked,
        truncated=row.truncated,
    )


def _usage(tokens: int) -> Usage:
    return Usage(total_tokens=tokens, prompt_tokens=tokens)


def classify_response(
    result: ClassifyResult, top_n: int | None, threshold: float | None = None
) -> ClassifyResponse:
    """The response of ``result``; a multi-label result's rows predict the labels at or above
    ``threshold`` (:data:`DEFAULT_THRESHOLD` when None)."""
    cut = (DEFAULT_THRESHOLD if threshold is None else threshold) if result.multi_label else None
    return ClassifyResponse(
        usage=_usage(result.total_tokens),
        model=result.model,
        data=[classification(row) for row in rank(result.groups, result.truncated, top_n, cut)],
    )


def classify(request: ClassifyRequest, services: Services, caller: ApiKeyRecord) -> ClassifyResponse:
    """Zero-shot against ``request.labels``, or few-shot with ``request.classifier_id``."""
    if request.labels is not None and request.classifier_id is not None:
        raise InvalidInput("Send either `labels` (zero-shot) or `classifier_id` (few-shot), not both.")
    if request.classifier_id is not None:
        result = service.classify_few_shot(
            services.fewshot_registry, services.store, services.settings, caller,
            classifier_id=request.classifier_id, items=request_items(request.input),
            model=request.model, top_n=request.top_n,
        )  # fmt: skip
        return classify_response(result, request.top_n, request.threshold)
    if request.labels is None:
        raise InvalidInput("Send `labels` (zero-shot) or `classifier_id` (few-shot).")
    result = service.classify_zero_shot(
        services.registry, services.images, services.label_cache, services.settings,
        items=request_items(request.input), labels=request.labels, model=request.model, top_n=request.top_n,
        multi_label=request.multi_label,
    )  # fmt: skip
    return classify_response(result, request.top_n, request.threshold)


def train(request: TrainRequest, services: Services, caller: ApiKeyRecord) -> TrainResponse:
    """Create or update a few-shot classifier from labelled examples (never stored)."""
    examples = [
        service.Example(item.image, item.target, image=True)
        if isinstance(item, ImageExample)
        else service.Example(item.text, item.target)
        for item in request.input
    ]
    result = service.train(
        services.fewshot_registry, services.store, services.settings, caller,
        examples=examples, classifier_id=request.classifier_id, model=request.model,
        access=request.access, num_iters=request.num_iters, multi_label=request.multi_label,
    )  # fmt: skip
    return TrainResponse(
        classifier_id=result.classifier_id,
        num_samples=len(examples),
        total_samples=result.num_samples,
        labels=list(result.labels),
        version=result.version,
        multi_label=result.multi_label,
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
        multi_label=bool(meta.multi_label),
    )


def get_classifier(classifier_id: str, services: Services, caller: ApiKeyRecord) -> ClassifierInfo:
    return classifier_info(fewshot.get_classifier(services.store, caller, classifier_id))


#: Namespace of the UUIDs that stand for tenant ids in listings (``user_id``).
TENANT_NAMESPACE = uuid.UUID("6b1f3e0c-6c55-4d3e-9a8e-0a4f3c2b1d7e")


def classifier_summary(meta: ClassifierMeta) -> ClassifierSummary:
    """Jina's listing entry for ``meta``."""
    return ClassifierSummary(
        classifier_id=meta.id,
        user_id=str(uuid.uuid5(TENANT_NAMESPACE, meta.owner)),
        model=meta.model,
        labels=list(meta.labels),
        access=meta.access,
        created_at=meta.created_at.isoformat(),
        updated_at=meta.updated_at.isoformat(),
        updated_number=meta.train_count,
        used_number=meta.classify_count,
        used_at=_iso(meta.last_used_at),
        is_active=True,
        is_latest=True,
        metadata_={
            "version": meta.version,
            "num_samples": meta.num_samples,
            **({} if meta.multi_label is None else {"multi_label": meta.multi_label}),
        },
    )


def list_classifiers(services: Services, caller: ApiKeyRecord) -> list[ClassifierSummary]:
    """The caller's classifiers, oldest first, as Jina's bare array of summaries (a 400 when they
    could not fit in one response)."""
    summaries = [classifier_summary(m) for m in fewshot.list_classifiers(services.store, caller)]
    check_response_size(
        json_bytes_bound([s.model_dump(mode="json") for s in summaries]),
        services.settings.max_response_bytes,
        "Delete the classifiers no longer in use (DELETE /v1/classifiers/{id}); each one stays readable "
        "with GET /v1/classifiers/{id}.",
    )
    return summaries


def delete_classifier(classifier_id: str, services: Services, caller: ApiKeyRecord) -> DeleteResponse:
    fewshot.delete_classifier(services.store, caller, classifier_id)
    return DeleteResponse(classifier_id=classifier_id)


def embeddings(request: EmbeddingsRequest, services: Services, caller: ApiKeyRecord) -> EmbeddingsResponse:
    """The input-role embeddings of ``request.input`` (what classify compares), metered like classify."""
    texts = [request.input] if isinstance(request.input, str) else list(request.input)
    result = service.embed_texts(
        services.registry, services.images, services.settings,
        texts=texts, model=request.model, embedding_type=request.embedding_type,
        dimensions=request.dimensions,
    )  # fmt: skip
    data = [
        EmbeddingObject(
            index=i,
            embedding=base64.b64encode(row.tobytes()).decode("ascii")
            if request.embedding_type == "base64"
            else [float(v) for v in row],
        )
        for i, row in enumerate(result.vectors)
    ]
    tokens = result.total_tokens
    return EmbeddingsResponse(
        model=result.model,
        data=data,
        usage=EmbeddingsUsage(total_tokens=tokens, prompt_tokens=tokens),
    )
