"""The classification use cases behind the routes: plain arguments in, plain results out.

Each function validates its inputs (domain errors from :mod:`labelwise.errors`), checks the
response-size bound before any work, embeds and scores. The HTTP layer (:mod:`labelwise.api.mapping`)
turns request models into these arguments and the results into response models.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from labelwise.classify import fewshot, multilabel
from labelwise.classify.budget import check_request_tokens, count_tokens
from labelwise.classify.image_models import FewShotRegistry, ImageModels, TextModels, text_model_for
from labelwise.classify.response_size import (
    check_response_size,
    classify_bytes_bound,
    embeddings_bytes_bound,
)
from labelwise.classify.zeroshot import (
    UNGROUPED,
    GroupScores,
    LabelEmbeddingCache,
    LabelLimits,
    normalize_label_groups,
    score_groups,
    zeroshot_label_vectors,
)
from labelwise.embedding.manifest import ModelManifest
from labelwise.embedding.pixels import IMAGE_TOKENS
from labelwise.embedding.port import Embedder
from labelwise.errors import InputLimitExceeded, InvalidInput
from labelwise.settings import Settings
from labelwise.storage.ports import Access, ApiKeyRecord, ClassifierStore


@dataclass(frozen=True)
class ImageRef:
    """An image input: an https URL or base64 data."""

    image: str


#: One input of a classify request: a text, or an image.
Item = str | ImageRef


@dataclass(frozen=True)
class ClassifyResult:
    """Scores per label group (:data:`~labelwise.classify.zeroshot.UNGROUPED` for a plain list)."""

    model: str  # the model that answered
    groups: dict[str, GroupScores]
    truncated: list[bool]
    total_tokens: int
    multi_label: bool = False  # independent per-label probabilities (rows need not sum to 1)


@dataclass(frozen=True)
class Example:
    """A labelled training example: a text, or an image reference (``image``)."""

    value: str
    label: str | tuple[str, ...]  # a tuple: the labels of a multi-label classifier's example
    image: bool = False


@dataclass(frozen=True)
class EmbeddingsResult:
    model: str
    vectors: npt.NDArray[np.float32]  # little-endian float32, one row per text
    total_tokens: int


EmbeddingType = Literal["float", "base64"]


def validate_items(items: Sequence[Item], max_inputs: int) -> list[Item]:
    """The request's inputs in order; at least one, at most ``max_inputs``, texts non-empty."""
    fewshot.check_input_count(len(items), max_inputs)
    for i, item in enumerate(items):
        if isinstance(item, str) and not item.strip():
            raise InvalidInput(f"`input[{i}]` is empty; inputs must be non-empty text.")
    return list(items)


def _references(items: list[Item]) -> list[str]:
    return [item.image if isinstance(item, ImageRef) else item for item in items]


def _has_images(items: list[Item]) -> bool:
    return any(isinstance(item, ImageRef) for item in items)


def classify_zero_shot(
    registry: TextModels,
    images: ImageModels,
    label_cache: LabelEmbeddingCache,
    settings: Settings,
    *,
    items: Sequence[Item],
    labels: Sequence[str] | dict[str, list[str]],
    model: str | None = None,
    top_n: int | None = None,
    multi_label: bool = False,
) -> ClassifyResult:
    """Zero-shot: each input against ``labels`` (a list, or named groups of labels). With
    ``multi_label`` each label is scored on its own (:func:`multilabel.zero_shot_probabilities`)
    instead of by a softmax over its group."""
    groups = normalize_label_groups(labels, LabelLimits.from_settings(settings))
    inputs = validate_items(items, settings.max_inputs)
    check_response_size(
        classify_bytes_bound(len(inputs), groups, top_n, multi_label),
        settings.max_response_bytes,
        "Ask for the best labels only (`top_n`), or send fewer inputs or labels per request.",
    )

    embedder = registry.get(text_model_for(registry, images, model))
    manifest = embedder.manifest
    text_at = [i for i, item in enumerate(inputs) if isinstance(item, str)]
    check_request_tokens(
        count_tokens(embedder, [str(inputs[i]) for i in text_at], "input")
        + sum(count_tokens(embedder, group, "label") for group in groups.values())
        + IMAGE_TOKENS * (len(inputs) - len(text_at)),
        settings.max_request_tokens,
    )
    vectors, truncated, tokens, answered_by = _embed_mixed_inputs(embedder, images, model, inputs, text_at)
    group_vectors = {}
    for name, group in groups.items():
        label_vectors, label_tokens = zeroshot_label_vectors(label_cache, embedder, group)
        group_vectors[name] = label_vectors
        tokens += sum(label_tokens)
    scores = _zero_shot_scores(vectors, group_vectors, groups, manifest, multi_label)
    return ClassifyResult(
        model=answered_by, groups=scores, truncated=truncated, total_tokens=tokens, multi_label=multi_label
    )


def _zero_shot_scores(
    vectors: npt.NDArray[np.float32],
    group_vectors: dict[str, npt.NDArray[np.float32]],
    groups: dict[str, list[str]],
    manifest: ModelManifest,
    multi_label: bool,
) -> dict[str, GroupScores]:
    """Each group's scores: a softmax over the group's labels, or with ``multi_label`` each label's
    own calibrated probability (:func:`multilabel.zero_shot_probabilities`)."""
    if not multi_label:
        return score_groups(vectors, group_vectors, groups, manifest.temperature)
    calibration = multilabel.calibration_for(manifest.name)
    return {
        name: GroupScores(groups[name], multilabel.zero_shot_probabilities(vectors, v, calibration))
        for name, v in group_vectors.items()
    }


def _embed_mixed_inputs(
    embedder: Embedder, images: ImageModels, model: str | None, inputs: list[Item], text_at: list[int]
) -> tuple[npt.NDArray[np.float32], list[bool], int, str]:
    """Zero-shot vectors of ``inputs`` (texts at ``text_at`` by ``embedder``, images by the image
    model paired with it): the vectors, which inputs were truncated, the tokens read and the name of
    the model that answered (the image model's when there are images)."""
    manifest = embedder.manifest
    vectors = np.zeros((len(inputs), manifest.dimension), np.float32)
    truncated = [False] * len(inputs)
    tokens = 0
    if text_at:
        batch = embedder.embed([str(inputs[i]) for i in text_at], role="input")
        vectors[text_at] = batch.vectors
        for i, was_truncated in zip(text_at, batch.truncated, strict=True):
            truncated[i] = was_truncated
        tokens += batch.total_tokens
    answered_by = manifest.name
    image_at = [i for i, item in enumerate(inputs) if isinstance(item, ImageRef)]
    if image_at:
        image_model = images.require(model, manifest.name)
        references = [inputs[i].image for i in image_at]  # type: ignore[union-attr]
        vectors[image_at] = image_model.zero_shot_vectors(references, indices=image_at)
        tokens += IMAGE_TOKENS * len(image_at)
        answered_by = image_model.name
    return vectors, truncated, tokens, answered_by


def classify_few_shot(
    models: FewShotRegistry,
    store: ClassifierStore,
    settings: Settings,
    caller: ApiKeyRecord,
    *,
    classifier_id: str,
    items: Sequence[Item],
    model: str | None = None,
    top_n: int | None = None,
) -> ClassifyResult:
    """Few-shot: each input with the stored classifier ``classifier_id`` (texts or images)."""
    inputs = validate_items(items, settings.max_inputs)
    if model is None and _has_images(inputs) and models.images.available:
        # an image input names the image model, so a text classifier answers with a clear mismatch
        model = models.images.require(None, models.text.default_model).name
    result = fewshot.classify_with_classifier(
        models, store, settings, caller, classifier_id=classifier_id, texts=_references(inputs), model=model,
        max_tokens=settings.max_request_tokens,
    )  # fmt: skip
    # The classifier's labels are known once it is loaded: a classifier with very many labels can
    # only be refused here, after the work (its labels are bounded by `max_labels`).
    check_response_size(
        classify_bytes_bound(len(inputs), {UNGROUPED: list(result.labels)}, top_n, result.multi_label),
        settings.max_response_bytes,
        "Ask for the best labels only (`top_n`), or send fewer inputs per request.",
    )
    groups = {UNGROUPED: GroupScores(labels=list(result.labels), probabilities=result.probabilities)}
    return ClassifyResult(
        model=result.model,
        groups=groups,
        truncated=result.truncated,
        total_tokens=result.total_tokens,
        multi_label=result.multi_label,
    )


def train(
    models: FewShotRegistry,
    store: ClassifierStore,
    settings: Settings,
    caller: ApiKeyRecord,
    *,
    examples: Sequence[Example],
    classifier_id: str | None = None,
    model: str | None = None,
    access: Access | None = None,
    num_iters: int | None = None,
    multi_label: bool = False,
) -> fewshot.TrainResult:
    """Create or update a few-shot classifier from labelled examples (never stored).

    Text examples train on the text model's embeddings; image examples on the image model's
    features (one classifier cannot mix the two spaces). ``multi_label`` creates a classifier that
    scores each label independently (see :func:`fewshot.train`)."""
    images = [e.image for e in examples]
    pairs = [(e.value, e.label) for e in examples]
    chosen = model
    if any(images):
        if not all(images):
            raise InvalidInput("A classifier learns from texts or from images: do not mix them in one call.")
        # an update too: image examples must reach an image classifier (a text one refuses them with
        # a model mismatch), never be learned as text
        chosen = models.images.require(model, models.text.default_model).name
    elif classifier_id is None or model is not None:
        chosen = text_model_for(models.text, models.images, model)
    # Too many labels (the batch's, or an update's total) is fewshot's 400 INPUT_LABEL_LIMIT_EXCEEDED,
    # as on /v1/classify.
    return fewshot.train(
        models, store, settings, caller,
        examples=pairs, classifier_id=classifier_id, model=chosen, access=access, num_iters=num_iters,
        max_tokens=settings.max_request_tokens, multi_label=multi_label,
    )  # fmt: skip


def embed_texts(
    registry: TextModels,
    images: ImageModels,
    settings: Settings,
    *,
    texts: Sequence[str],
    model: str | None = None,
    embedding_type: EmbeddingType = "float",
    dimensions: int | None = None,
) -> EmbeddingsResult:
    """The input-role embeddings of ``texts`` (what classify compares), metered like classify;
    ``embedding_type`` only bounds the response size. ``dimensions``, when given, must be the
    model's own size: the served models are not trained for truncation (Matryoshka), so a shorter
    vector would be a different, worse one than the client asked for."""
    if not texts:
        raise InvalidInput("`input` must contain at least one text.")
    if len(texts) > settings.max_inputs:
        raise InputLimitExceeded(
            f"`input` has {len(texts)} texts; at most {settings.max_inputs} are allowed."
        )
    for i, text in enumerate(texts):
        if not text.strip():
            raise InvalidInput(f"`input[{i}]` is empty; inputs must be non-empty text.")
    embedder = registry.get(text_model_for(registry, images, model))
    native = embedder.manifest.dimension
    if dimensions is not None and dimensions != native:
        raise InvalidInput(
            f"`dimensions` is {dimensions}, but model '{embedder.manifest.name}' gives {native}-dimensional "
            f"vectors and was not trained for truncated ones; send `dimensions` {native} or leave it out."
        )
    check_response_size(
        embeddings_bytes_bound(len(texts), native, embedding_type),
        settings.max_response_bytes,
        "Ask for `embedding_type` `base64` (a third of the size), or send fewer texts per request.",
    )
    check_request_tokens(count_tokens(embedder, texts, "input"), settings.max_request_tokens)
    batch = embedder.embed(list(texts), role="input")
    return EmbeddingsResult(
        model=embedder.manifest.name,
        vectors=np.asarray(batch.vectors, dtype="<f4"),
        total_tokens=batch.total_tokens,
    )
