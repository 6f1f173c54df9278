"""Cohere-shaped classify: the request model -> :func:`labelwise.classify.cohere.classify`'s
arguments, its :class:`~labelwise.classify.cohere.CohereResult` -> Cohere's response model."""

from __future__ import annotations

import uuid

import numpy as np

from labelwise.api.cohere_schemas import (
    CohereBilledUnits,
    CohereClassification,
    CohereClassifyRequest,
    CohereClassifyResponse,
    CohereLabelConfidence,
    CohereMeta,
)
from labelwise.classify import cohere
from labelwise.classify.cohere import CohereResult
from labelwise.classify.multilabel import DEFAULT_THRESHOLD
from labelwise.services import Services
from labelwise.storage.ports import ApiKeyRecord


def _row(text: str, labels: list[str], probs: np.ndarray, multi_label: bool) -> CohereClassification:
    """One classification: the best label (single-label), or (multi-label, ``classification_type``
    ``multi-label``) every label at or above :data:`DEFAULT_THRESHOLD`, best first."""
    confidences = {
        label: CohereLabelConfidence(confidence=float(p)) for label, p in zip(labels, probs, strict=True)
    }
    order = [int(j) for j in np.argsort(-probs, kind="stable")]
    if multi_label:
        chosen = [j for j in order if probs[j] >= DEFAULT_THRESHOLD]
        return CohereClassification(
            id=str(uuid.uuid4()),
            input=text,
            prediction=None,
            predictions=[labels[j] for j in chosen],
            confidence=None,
            confidences=[float(probs[j]) for j in chosen],
            labels=confidences,
            classification_type="multi-label",
        )
    best = order[0]
    return CohereClassification(
        id=str(uuid.uuid4()),
        input=text,
        prediction=labels[best],
        predictions=[labels[best]],
        confidence=float(probs[best]),
        confidences=[float(probs[best])],
        labels=confidences,
        classification_type="single-label",
    )


def cohere_response(result: CohereResult) -> CohereClassifyResponse:
    rows = [
        _row(text, result.labels, probs, result.multi_label)
        for text, probs in zip(result.inputs, result.probabilities, strict=True)
    ]
    return CohereClassifyResponse(
        id=str(uuid.uuid4()),
        classifications=rows,
        meta=CohereMeta(
            billed_units=CohereBilledUnits(input_tokens=result.total_tokens, classifications=len(rows)),
            warnings=result.warnings or None,
        ),
    )


def classify(
    request: CohereClassifyRequest, services: Services, caller: ApiKeyRecord
) -> CohereClassifyResponse:
    """Answer a Cohere-shaped classify request."""
    result = cohere.classify(
        services.registry, services.store, services.settings, services.label_cache, caller,
        inputs=request.inputs, examples=[(e.text, e.label) for e in request.examples or []],
        model=request.model, truncate=request.truncate, preset=request.preset,
    )  # fmt: skip
    return cohere_response(result)
