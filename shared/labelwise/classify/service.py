"""What the routes call: one library function per route, from request model to response model."""

from __future__ import annotations

import base64
import uuid

import numpy as np

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
from labelwise.classify import fewshot
from labelwise.classify.images import IMAGE_TOKENS
from labelwise.classify.response_size import (
    check_response_size,
    classify_bytes_bound,
    embeddings_bytes_bound,
)
from labelwise.classify.zeroshot import (
    UNGROUPED,
    GroupScores,
    normalize_label_groups,
    score_groups,
    zeroshot_label_vectors,
)
from labelwise.errors import InputLimitExceeded, InvalidInput
from labelwise.runtime import Services
from labelwise.storage.ports import ApiKeyRecord, ClassifierMeta

Item = str | ImageInput


def request_items(raw: object, max_inputs: int) -> list[Item]:
    """The request's inputs in order: texts (validated non-empty) and image objects."""
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise InvalidInput("`input` must contain at least one item.")
    if len(items) > max_inputs:
        raise InputLimitExceeded(f"`input` has {len(items)} items; at most {max_inputs} are allowed.")
    out: list[Item] = []
    for i, item in enumerate(items):
        if isinstance(item, ImageInput):
            out.append(item)
            continue
        text = item.text if isinstance(item, TextInput) else str(item)
        if not text.strip():
            raise InvalidInput(f"`input[{i}]` is empty; inputs must be non-empty text.")
        out.append(text)
    return out


def _references(items: list[Item]) -> list[str]:
    return [item.image if isinstance(item, ImageInput) else item for item in items]


def _has_images(items: list[Item]) -> bool:
    return any(isinstance(item, ImageInput) for item in items)


def _ranked(labels: list[str], probabilities: np.ndarray) -> list[LabelScore]:
    order = np.argsort(-probabilities, kind="stable")
    return [LabelScore(label=labels[j], score=float(probabilities[j])) for j in order]


def build_classifications(
    groups: dict[str, GroupScores], truncated: list[bool], top_n: int | None = None
) -> list[Classification]:
    """Response rows: one per input; plain values for a label list, objects keyed by group otherwise.
    ``predictions`` lists the ``top_n`` best labels of each group (all when ``None``)."""
    rows: list[Classification] = []
    for i, was_truncated in enumerate(truncated):
        ranked = {name: _ranked(g.labels, g.probabilities[i])[:top_n] for name, g in groups.items()}
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
    items = request_items(request.input, services.settings.max_inputs)
    check_response_size(
        classify_bytes_bound(len(items), groups, request.top_n),
        services.settings.max_response_bytes,
        "Ask for the best labels only (`top_n`), or send fewer inputs or labels per request.",
    )

    embedder = services.registry.get(services.text_model_for(request.model))
    manifest = embedder.manifest
    vectors = np.zeros((len(items), manifest.dimension), np.float32)
    truncated = [False] * len(items)
    tokens = 0
    text_at = [i for i, item in enumerate(items) if isinstance(item, str)]
    if text_at:
        batch = embedder.embed([str(items[i]) for i in text_at], role="input")
        vectors[text_at] = batch.vectors
        for i, was_truncated in zip(text_at, batch.truncated, strict=True):
            truncated[i] = was_truncated
        tokens += batch.total_tokens
    answered_by = manifest.name
    image_at = [i for i, item in enumerate(items) if isinstance(item, ImageInput)]
    if image_at:
        image_model = services.images.require(request.model, manifest.name)
        references = [items[i].image for i in image_at]  # type: ignore[union-attr]
        vectors[image_at] = image_model.zero_shot_vectors(references, indices=image_at)
        tokens += IMAGE_TOKENS * len(image_at)
        answered_by = image_model.name
    group_vectors = {}
    for name, labels in groups.items():
        label_vectors, label_tokens = zeroshot_label_vectors(services.label_cache, embedder, labels)
        group_vectors[name] = label_vectors
        tokens += sum(label_tokens)
    scores = score_groups(vectors, group_vectors, groups, manifest.temperature)
    return ClassifyResponse(
        usage=_usage(tokens),
        model=answered_by,
        data=build_classifications(scores, truncated, request.top_n),
    )


def _classify_few_shot(
    request: ClassifyRequest, classifier_id: str, services: Services, caller: ApiKeyRecord
) -> ClassifyResponse:
    items = request_items(request.input, services.settings.max_inputs)
    model = request.model
    if model is None and _has_images(items) and services.images.available:
        # an image input names the image model, so a text classifier answers with a clear mismatch
        model = services.images.require(None, services.registry.default_model).name
    result = fewshot.classify_with_classifier(
        services.fewshot_registry, services.store, services.settings, caller,
        classifier_id=classifier_id, texts=_references(items), model=model,
    )  # fmt: skip
    # The classifier's labels are known once it is loaded: a classifier with very many labels can
    # only be refused here, after the work (its labels are bounded by `max_labels`).
    check_response_size(
        classify_bytes_bound(len(items), {UNGROUPED: list(result.labels)}, request.top_n),
        services.settings.max_response_bytes,
        "Ask for the best labels only (`top_n`), or send fewer inputs per request.",
    )
    groups = {UNGROUPED: GroupScores(labels=list(result.labels), probabilities=result.probabilities)}
    return ClassifyResponse(
        usage=_usage(result.total_tokens),
        model=result.model,
        data=build_classifications(groups, result.truncated, request.top_n),
    )


def train(request: TrainRequest, services: Services, caller: ApiKeyRecord) -> TrainResponse:
    """Create or update a few-shot classifier from labelled examples (never stored).

    Text examples train on the text model's embeddings; image examples on the image model's
    features (one classifier cannot mix the two spaces)."""
    images = [isinstance(item, ImageExample) for item in request.input]
    examples = [
        (item.image if isinstance(item, ImageExample) else item.text, item.label) for item in request.input
    ]
    model = request.model
    if any(images):
        if not all(images):
            raise InvalidInput("A classifier learns from texts or from images: do not mix them in one call.")
        if request.classifier_id is None:
            model = services.images.require(request.model, services.registry.default_model).name
    elif request.classifier_id is None or request.model is not None:
        model = services.text_model_for(request.model)
    result = fewshot.train(
        services.fewshot_registry, services.store, services.settings, caller,
        examples=examples, classifier_id=request.classifier_id, model=model,
        access=request.access, num_iters=request.num_iters,
    )  # fmt: skip
    return TrainResponse(
        classifier_id=result.classifier_id,
        num_samples=len(examples),
        total_samples=result.num_samples,
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
        metadata_={"version": meta.version, "num_samples": meta.num_samples},
    )


def list_classifiers(services: Services, caller: ApiKeyRecord) -> list[ClassifierSummary]:
    """The caller's classifiers, oldest first, as Jina's bare array of summaries."""
    return [classifier_summary(m) for m in fewshot.list_classifiers(services.store, caller)]


def delete_classifier(classifier_id: str, services: Services, caller: ApiKeyRecord) -> DeleteResponse:
    fewshot.delete_classifier(services.store, caller, classifier_id)
    return DeleteResponse(classifier_id=classifier_id)


def embeddings(request: EmbeddingsRequest, services: Services, caller: ApiKeyRecord) -> EmbeddingsResponse:
    """The input-role embeddings of ``request.input`` (what classify compares), metered like classify."""
    texts = [request.input] if isinstance(request.input, str) else list(request.input)
    if not texts:
        raise InvalidInput("`input` must contain at least one text.")
    if len(texts) > services.settings.max_inputs:
        raise InputLimitExceeded(
            f"`input` has {len(texts)} texts; at most {services.settings.max_inputs} are allowed."
        )
    for i, text in enumerate(texts):
        if not text.strip():
            raise InvalidInput(f"`input[{i}]` is empty; inputs must be non-empty text.")
    embedder = services.registry.get(services.text_model_for(request.model))
    check_response_size(
        embeddings_bytes_bound(len(texts), embedder.manifest.dimension, request.embedding_type),
        services.settings.max_response_bytes,
        "Ask for `embedding_type` `base64` (a third of the size), or send fewer texts per request.",
    )
    batch = embedder.embed(texts, role="input")
    vectors = np.asarray(batch.vectors, dtype="<f4")
    data = [
        EmbeddingObject(
            index=i,
            embedding=base64.b64encode(row.tobytes()).decode("ascii")
            if request.embedding_type == "base64"
            else [float(v) for v in row],
        )
        for i, row in enumerate(vectors)
    ]
    tokens = batch.total_tokens
    return EmbeddingsResponse(
        model=embedder.manifest.name,
        data=data,
        usage=EmbeddingsUsage(total_tokens=tokens, prompt_tokens=tokens),
    )
