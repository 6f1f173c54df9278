"""``POST /v1/classify``: one library call from request model to response model."""

from __future__ import annotations

import numpy as np

from labelwise.api.schemas import (
    Classification,
    ClassifyRequest,
    ClassifyResponse,
    ImageInput,
    LabelScore,
    TextInput,
    Usage,
)
from labelwise.classify.zeroshot import UNGROUPED, GroupScores, normalize_label_groups, score_groups
from labelwise.errors import InputLimitExceeded, InvalidInput, UnsupportedInput
from labelwise.runtime import Services


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
            raise UnsupportedInput(
                f"`input[{i}]` is an image; this deployment has no image model yet. Send text inputs."
            )
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


def classify(request: ClassifyRequest, services: Services) -> ClassifyResponse:
    """Zero-shot classification of ``request.input`` against ``request.labels``."""
    if request.labels is not None and request.classifier_id is not None:
        raise InvalidInput("Send either `labels` (zero-shot) or `classifier_id` (few-shot), not both.")
    if request.labels is None:
        raise InvalidInput("`labels` is required for zero-shot classification.")
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
    total = inputs.total_tokens + label_tokens
    return ClassifyResponse(
        usage=Usage(total_tokens=total, prompt_tokens=total),
        model=manifest.name,
        data=build_classifications(scores, inputs.truncated),
    )
