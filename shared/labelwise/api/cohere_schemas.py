"""Cohere's classify request and response: the shape existing Cohere clients send and parse.

Cohere retired ``POST /v1/classify``; labelwise answers it on the same route, recognising the
request by its ``inputs`` field (Jina's shape uses ``input``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from labelwise.api.schemas import request_config


class CohereExample(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(description="Example text (at most 512 tokens).")
    label: str = Field(description="Its label (each label needs at least 2 examples).")


class CohereClassifyRequest(BaseModel):
    """Cohere's classify request (``cohere.Client().classify(...)``)."""

    model_config = request_config(
        {
            "inputs": ["Confirm your email address", "hey i need u to send some $"],
            "examples": [
                {"text": "Dermatologists don't like her!", "label": "Spam"},
                {"text": "Hello, open to this?", "label": "Spam"},
                {"text": "Your parcel will be delivered today", "label": "Not spam"},
                {"text": "Review changes to our Terms and Conditions", "label": "Not spam"},
            ],
        }
    )

    inputs: list[str] = Field(description="1 to 96 non-empty texts to classify.")
    examples: list[CohereExample] | None = Field(
        None,
        description="Labelled examples (at most 2,500; at least 2 per label). The classifier is learned "
        "inside the request and discarded. May be omitted when `model` is a stored classifier's id.",
    )
    model: str | None = Field(
        None,
        description="A Cohere embed model name (mapped to a labelwise model, e.g. `embed-english-v3.0`), "
        "a labelwise model name, or the id of a stored labelwise classifier.",
    )
    preset: str | None = Field(None, description="Not supported: a request with a preset is refused.")
    truncate: Literal["NONE", "START", "END"] = Field(
        "END",
        description="Inputs longer than the model window: `END` drops the end, `START` the start, "
        "`NONE` refuses the request. `null` means the default, `END`.",
    )

    @field_validator("truncate", mode="before")
    @classmethod
    def _null_is_the_default(cls, value: Any) -> Any:
        return "END" if value is None else value


class CohereLabelConfidence(BaseModel):
    confidence: float


class CohereClassification(BaseModel):
    id: str = Field(description="Id of this classification.")
    input: str = Field(description="The input text.")
    prediction: str | None = Field(description="Best label (single-label; null for multi-label).")
    predictions: list[str] = Field(
        description="`[prediction]` (single-label), or every label with a confidence of at least 0.5, "
        "best first (multi-label)."
    )
    confidence: float | None = Field(
        description="Confidence of the prediction (single-label; null for multi-label)."
    )
    confidences: list[float] = Field(description="The confidences of `predictions`, in their order.")
    labels: dict[str, CohereLabelConfidence] = Field(
        description="Every label's confidence; they sum to 1 for single-label, each is its own for "
        "multi-label."
    )
    classification_type: Literal["single-label", "multi-label"] = Field(
        "single-label",
        description="`multi-label` when `model` names a stored multi-label classifier.",
    )


class CohereApiVersion(BaseModel):
    version: str = "1"


class CohereBilledUnits(BaseModel):
    input_tokens: int = Field(description="Tokens embedded for this request (inputs and examples).")
    classifications: int = Field(description="Inputs classified by this request (Cohere's billing unit).")


class CohereMeta(BaseModel):
    api_version: CohereApiVersion = Field(default_factory=CohereApiVersion)
    billed_units: CohereBilledUnits
    warnings: list[str] | None = None


class CohereClassifyResponse(BaseModel):
    id: str = Field(description="Id of the response.")
    classifications: list[CohereClassification]
    meta: CohereMeta


class CohereError(BaseModel):
    """Cohere's error body, used for errors of Cohere-shaped requests."""

    message: str


def is_cohere_shape(value: object) -> bool:
    """Whether a classify request (a parsed JSON body or a request model) is in Cohere's shape:
    Cohere's is recognised by ``inputs`` (Jina's has ``input``)."""
    if isinstance(value, dict):
        return "inputs" in value
    return isinstance(value, CohereClassifyRequest)
