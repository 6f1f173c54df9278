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
from labelwise.services import Services
from labelwise.storage.ports import ApiKeyRecord


def cohere_response(result: CohereResult) -> CohereClassifyResponse:
    labels = result.labels
    rows = []
    for text, probs in zip(result.inputs, result.probabilities, strict=True):
        best = int(np.argmax(probs))
        rows.append(
            CohereClassification(
                id=str(uuid.uuid4()),
                input=text,
                prediction=labels[best],
                predictions=[labels[best]],
                confidence=float(probs[best]),
                confidences=[float(probs[best])],
                labels={
                    label: CohereLabelConfidence(confidence=float(p))
                    for label, p in zip(labels, probs, strict=True)
                },
            )
        )
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
