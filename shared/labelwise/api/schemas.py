"""Request and response models: the API contract.

Shapes follow Jina AI's Classifier API (``/v1/classify``, ``/v1/train``). The OpenAPI document is
generated from these models (``make openapi``), committed as ``docs/openapi.json`` and checked by
a test. Limits that carry their own error codes (label counts, input counts) are enforced by the
logic, not the schema, so they answer 400 with a Jina code rather than a generic 422.

Request models ignore fields they do not define (``extra="ignore"``): Jina's and Cohere's clients may
send fields of their own, and a field neither side knows changes nothing here. What protects state
(label limits, empty texts, sizes) is checked strictly.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

NonEmptyText = Annotated[str, StringConstraints(min_length=1)]


class TextInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = Field(description="Text to classify.", examples=["Refund my last order please"])


class ImageInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    image: str = Field(
        description="An https URL or base64-encoded image (with or without a `data:` prefix).",
    )


InputItem = Annotated[
    str | TextInput | ImageInput,
    Field(description='A text, or an object `{"text": …}` / `{"image": …}`.'),
]


def request_config(example: dict[str, Any]) -> ConfigDict:
    """A request model's config: unknown fields ignored, ``model`` usable as a field name, and
    ``example`` shown in the OpenAPI document."""
    return ConfigDict(extra="ignore", protected_namespaces=(), json_schema_extra={"examples": [example]})


LabelList = list[str]
LabelGroups = dict[str, list[str]]


class ClassifyRequest(BaseModel):
    """Zero-shot (with `labels`) or few-shot (with `classifier_id`) classification."""

    model_config = request_config(
        {
            "model": "jina-embeddings-v3",
            "input": ["Calculate the compound interest on $10,000 at 5% for 3 years"],
            "labels": ["Simple task", "Complex reasoning", "Creative writing"],
        }
    )

    model: str | None = Field(
        None,
        description="Model name or alias (Jina's and Cohere's embedding model names are accepted). "
        "Defaults to the deployment's default model; with `classifier_id`, the classifier's model.",
    )
    input: InputItem | list[InputItem] = Field(
        description='1 to 1,024 inputs: strings, `{"text": …}` or `{"image": …}` objects.',
    )
    labels: LabelList | LabelGroups | None = Field(
        None,
        description="Zero-shot: 1 to 512 distinct non-empty labels, or an object of up to 8 named "
        "groups of up to 64 labels each, scored independently. Omit when using `classifier_id`.",
    )
    classifier_id: str | None = Field(
        None, description="Few-shot: id of a classifier created with `POST /v1/train`."
    )
    top_n: int | None = Field(
        None,
        ge=1,
        description="List only the `top_n` best labels per input (per group) in `predictions`; all "
        "labels when omitted. Large requests (many inputs times many labels) need it to fit in one "
        "response (6 MB).",
    )
    multi_label: bool = Field(
        False,
        description="Zero-shot only: score each label on its own (a calibrated sigmoid of its cosine "
        "similarity) instead of a softmax over the labels, so scores do not sum to 1 and `prediction` "
        "lists every label scored at least `threshold`. With `classifier_id` the classifier's own kind "
        "(`multi_label` at creation) decides.",
    )
    threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Multi-label only: `prediction` lists the labels scored at least this (default 0.5).",
    )


class LabelScore(BaseModel):
    label: str = Field(description="A label.")
    score: float = Field(
        description="Probability of this label; the scores of one input sum to 1 (per group), except for "
        "multi-label classification, where each label's probability is its own."
    )


class Classification(BaseModel):
    object: Literal["classification"] = Field(
        default="classification", description="Always `classification`."
    )
    index: int = Field(description="Position of the input in the request.")
    prediction: str | list[str] | dict[str, str] | dict[str, list[str]] = Field(
        description="Best label (or, with label groups, an object of best labels keyed by group). "
        "Multi-label: the list of labels scored at least `threshold`, best first (per group)."
    )
    score: float | dict[str, float] = Field(
        description="Probability of `prediction` (per group); multi-label: of the best label."
    )
    predictions: list[LabelScore] | dict[str, list[LabelScore]] = Field(
        description="Every label (or the `top_n` best) with its probability, best first (per group)."
    )
    truncated: bool = Field(
        default=False,
        description="True when the input exceeded the model's token limit and its tail was ignored.",
    )


class Usage(BaseModel):
    total_tokens: int = Field(description="Tokens processed for this request (inputs and labels).")
    prompt_tokens: int = Field(description="Same as `total_tokens` (embedding models have no completion).")


class ClassifyResponse(BaseModel):
    usage: Usage
    model: str = Field(description="Canonical name of the model that answered.")
    data: list[Classification]


class ErrorDetail(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. `body.input.0`.")
    message: str = Field(description="What is wrong with it.")
    type: str = Field(description="Machine-readable error type (pydantic's).")


class ErrorResponse(BaseModel):
    """The error envelope of every labelwise error (Jina's shape)."""

    code: str = Field(description="Machine-readable error code, e.g. `INPUT_INVALID_LABELS`.")
    detail: str = Field(description="Human-readable explanation.")
    request_id: str = Field(description="Id of the request, also in the logs and `x-request-id`.")
    errors: list[ErrorDetail] | None = Field(None, description="Schema violations (422 only).")


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    models: list[str] = Field(description="Models this deployment can serve.")


# --- few-shot: /v1/train and /v1/classifiers ---------------------------------------------------


class _Labelled(BaseModel):
    """A training example's target: `label`, or (multi-label classifiers) `labels`."""

    model_config = ConfigDict(extra="ignore")

    label: str | None = Field(None, description="Its label. New labels extend the classifier.")
    labels: list[str] | None = Field(
        None,
        description="Instead of `label`, for a multi-label classifier: all of its labels (an empty list: "
        "none of the classifier's labels applies).",
    )

    @model_validator(mode="after")
    def _one_target(self) -> _Labelled:
        if (self.label is None) == (self.labels is None):
            raise ValueError("an example needs exactly one of `label` and `labels`")
        return self

    @property
    def target(self) -> str | tuple[str, ...]:
        """One label, or the tuple of a multi-label example's labels."""
        return self.label if self.labels is None else tuple(self.labels)  # type: ignore[return-value]


class TextExample(_Labelled):
    text: str = Field(description="Example text. It is embedded, learned from and dropped: never stored.")


class ImageExample(_Labelled):
    image: str = Field(description="An https URL or base64 image. Never stored.")


TrainExample = Annotated[TextExample | ImageExample, Field(description="A labelled example.")]


class TrainRequest(BaseModel):
    """Create a classifier (no `classifier_id`) or update one (with `classifier_id`)."""

    model_config = request_config(
        {
            "model": "jina-embeddings-v3",
            "access": "private",
            "input": [
                {"text": "My card was charged twice", "label": "billing"},
                {"text": "Where is my parcel?", "label": "shipping"},
            ],
            "num_iters": 10,
        }
    )

    model: str | None = Field(
        None, description="Embedding model (create only; default: the deployment's default model)."
    )
    classifier_id: str | None = Field(None, description="Update this classifier instead of creating one.")
    access: Literal["private", "public"] | None = Field(
        None,
        description="`private` (default): only the owner's keys may use it. `public`: any valid key may "
        "classify with it (and nothing else). Only the owner may change it.",
    )
    input: list[TrainExample] = Field(
        description="1 to 1,024 labelled examples (a single example object is accepted too, as Jina's "
        "update request allows)."
    )
    num_iters: int = Field(
        10,
        ge=1,
        le=100,
        description="How strongly this batch is learned (1 to 100): the passive-aggressive expert's "
        "passes over it, and the batch's weight (num_iters / 10) in the class means, ridge statistics "
        "and expert scores. Higher for trusted examples, lower for doubtful ones.",
    )
    multi_label: bool = Field(
        False,
        description="Create only: a multi-label classifier, which scores each label independently "
        "(one-vs-rest, calibrated sigmoid probabilities) and learns from examples with `labels` lists. "
        "Updates keep the classifier's kind.",
    )

    @field_validator("input", mode="before")
    @classmethod
    def _one_example_is_a_list_of_one(cls, value: Any) -> Any:
        return [value] if isinstance(value, dict) else value


class TrainResponse(BaseModel):
    classifier_id: str = Field(description="Id to classify with (`POST /v1/classify`).")
    num_samples: int = Field(description="Examples processed in this request (Jina's meaning).")
    total_samples: int = Field(description="Examples learned by this classifier so far, all versions.")
    labels: list[str] = Field(description="The classifier's labels, in creation order.")
    version: int = Field(description="Version created by this call.")
    multi_label: bool = Field(False, description="Whether the classifier scores each label independently.")
    usage: Usage


class ClassifierInfo(BaseModel):
    classifier_id: str
    model: str = Field(description="Embedding model.")
    labels: list[str]
    access: Literal["private", "public"]
    num_samples: int
    version: int
    created_at: str = Field(description="ISO 8601 UTC.")
    updated_at: str = Field(description="ISO 8601 UTC (last train).")
    last_used_at: str | None = Field(None, description="ISO 8601 UTC (last classify).")
    classify_count: int
    train_count: int
    multi_label: bool = Field(
        False,
        description="Whether the classifier scores each label independently (created with `multi_label`).",
    )


class ClassifierList(BaseModel):
    data: list[ClassifierInfo]


class ClassifierSummary(BaseModel):
    """One entry of ``GET``/``POST /v1/classifiers``: Jina's ``ClassifierSummary``."""

    classifier_id: str = Field(description="The classifier's id.")
    user_id: str = Field(
        description="The owning tenant, as a UUID (version 5 of the tenant id: stable, reveals nothing else)."
    )
    model: str = Field(description="Embedding model.")
    labels: list[str] = Field(description="Labels, in creation order.")
    access: Literal["private", "public"] = Field(description="`private` or `public`.")
    created_at: str = Field(description="Creation time, ISO 8601 UTC.")
    updated_at: str = Field(description="Last training time, ISO 8601 UTC.")
    updated_number: int = Field(description="Training calls so far (the first, creating call included).")
    used_number: int = Field(description="Classify calls so far.")
    used_at: str | None = Field(None, description="Last classify time, ISO 8601 UTC.")
    is_active: bool = Field(True, description="Always true: deleted classifiers are gone.")
    is_latest: bool = Field(True, description="Always true: the listing shows each latest version.")
    metadata_: dict[str, Any] = Field(
        default_factory=dict,
        description="`version` and `num_samples` of the latest version, and `multi_label` (whether it "
        "scores each label independently; left out for a classifier stored by a release before 2026-12 "
        "and not trained since: `GET /v1/classifiers/{id}` reads it from the weights).",
    )


class DeleteResponse(BaseModel):
    classifier_id: str
    deleted: Literal[True] = True
