"""The HTTP application: routes over the library, shared by the Lambda functions and `labelwise serve`.

Route functions are thin: the resolver validates the request model, the route calls one library
function and returns its response model. Which routes an app serves follows the deployment:
the classify function serves ``/v1/classify``, the train function the stateful routes, and the
local server all of them.
"""

# No `from __future__ import annotations`: Powertools reads the route signatures at run time,
# and the `Caller` dependency is a closure over this app's services.

import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.request import Request
from pydantic import Discriminator, Tag

from labelwise import __version__
from labelwise.api import cohere_mapping, jsonbody, mapping
from labelwise.api.auth import authenticate
from labelwise.api.cohere_schemas import (
    CohereClassifyRequest,
    CohereClassifyResponse,
    CohereError,
    is_cohere_shape,
)
from labelwise.api.embedding_schemas import EmbeddingsRequest, EmbeddingsResponse
from labelwise.api.errors import register_error_handlers, request_id_of
from labelwise.api.schemas import (
    ClassifierInfo,
    ClassifierSummary,
    ClassifyRequest,
    ClassifyResponse,
    DeleteResponse,
    ErrorResponse,
    HealthResponse,
    TrainRequest,
    TrainResponse,
)
from labelwise.errors import LabelwiseError, PayloadTooLarge
from labelwise.request_context import current_tokens, record_caller
from labelwise.services import Services
from labelwise.storage.ports import ApiKeyRecord
from labelwise.telemetry import TelemetryResolver

logger = logging.getLogger(__name__)

Scope = Literal["classify", "train", "all"]


def request_shape(value: Any) -> str:
    """The discriminator of :data:`AnyClassifyRequest` (:func:`is_cohere_shape`)."""
    return "cohere" if is_cohere_shape(value) else "jina"


AnyClassifyRequest = Annotated[
    Annotated[ClassifyRequest, Tag("jina")] | Annotated[CohereClassifyRequest, Tag("cohere")],
    Discriminator(request_shape),
]

API_TITLE = "labelwise"
API_DESCRIPTION = (
    "Self-hosted zero-shot and few-shot classification of text, compatible with Jina AI's "
    "Classifier API and Cohere's classify."
)

ERROR_RESPONSES: dict[int, OpenAPIResponse] = {
    code: {"description": desc, "content": {"application/json": {"model": ErrorResponse}}}
    for code, desc in {
        400: "Invalid input (bad labels, empty text, unknown model, body not JSON), too many labels "
        "(`INPUT_LABEL_LIMIT_EXCEEDED`), or an answer that could not fit in one 6 MB response "
        "(`RESPONSE_TOO_LARGE`: ask for `top_n`, `embedding_type` `base64`, or send fewer inputs).",
        401: "Missing API key (`AUTH_MISSING_API_KEY`), unknown or revoked key (`AUTH_INVALID_API_KEY`), "
        "or an Authorization header that is not `Bearer <key>` (`AUTH_INVALID_FORMAT`).",
        403: "A per-key resource limit, e.g. classifiers per key (`AUTHZ_RESOURCE_LIMIT_EXCEEDED`).",
        404: "Unknown classifier, or one the caller may not use (the two are not distinguished).",
        409: "Too many concurrent updates of this classifier; retry.",
        429: "The key's requests (`RATE_REQUEST_LIMIT_EXCEEDED`) or tokens (`RATE_TOKEN_LIMIT_EXCEEDED`) "
        "per minute are used up (see the X-RateLimit-* headers).",
        413: "Request body too large (`INPUT_PAYLOAD_TOO_LARGE`), more tokens to embed than one "
        "request may (`INPUT_TOKEN_LIMIT_EXCEEDED`, `max_request_tokens`: use S3 uploads), or images with "
        "more pixels in all than one request may (`INPUT_PIXEL_LIMIT_EXCEEDED`, `max_request_pixels`).",
        415: "The body is not declared as JSON (`INPUT_UNSUPPORTED_MEDIA_TYPE`).",
        422: "The body does not match the schema.",
        500: "An unexpected error (`INTERNAL_ERROR`); the body reveals only the request id.",
        503: "A dependency (model, store) is unavailable; retry later.",
        504: "The request ran past its time budget (`SERVICE_TIMEOUT`): its work (`request_budget_s`, 25 s "
        "by default, below API Gateway's 30 s) or its image URL fetches (`image_fetch_deadline_s`); send "
        "fewer or shorter inputs, or classify large batches with S3 uploads (docs/uploads.md).",
    }.items()
}


def responses(success: str) -> dict[int, OpenAPIResponse]:
    return {200: {"description": success}, **ERROR_RESPONSES}


def classify_responses(success: str) -> dict[int, OpenAPIResponse]:
    """Errors of a Cohere-shaped classify request use Cohere's envelope ``{"message": ...}``."""
    either = ErrorResponse | CohereError
    return {
        200: {"description": success},
        **{
            code: {**response, "content": {"application/json": {"model": either}}}
            for code, response in ERROR_RESPONSES.items()
        },
    }


SECURITY_SCHEMES = {"bearerAuth": HTTPBearer(description="An API key: `Authorization: Bearer lw_...`.")}
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def create_app(
    services: Services, scope: Scope = "all", metrics: Any | None = None
) -> APIGatewayHttpResolver:
    """An API Gateway HTTP API (payload v2) resolver serving ``scope``'s routes over ``services``.

    ``metrics`` (a Powertools ``Metrics``, in Lambda) receives per-request metrics by route, status
    and model."""
    settings = services.settings
    app = TelemetryResolver(
        enable_validation=True,
        metrics=metrics,
        json_body_deserializer=jsonbody.loads,
        budget_s=settings.request_budget_s,
        margin_ms=settings.request_budget_margin_ms,
    )

    def caller_of(headers: dict[str, str]) -> ApiKeyRecord:
        return authenticate(services.keys, headers, settings.require_auth)

    register_error_handlers(app, caller_of)

    def current_caller(request: Request) -> ApiKeyRecord:
        caller = caller_of(request.headers)
        record_caller(caller.key_id)
        services.limiter.admit(caller.key_id)  # 429 past the key's quota
        app.context.update(quota_key_id=caller.key_id)  # what append_context does (typed)
        return caller

    app.use(middlewares=[add_request_id, body_size_limit(settings.max_body_bytes), quota_charge(services)])

    @app.get(
        "/health",
        summary="Liveness and the models this deployment serves",
        tags=["meta"],
        responses={200: {"description": "Alive."}, **{s: ERROR_RESPONSES[s] for s in (413, 500)}},
    )
    def health() -> HealthResponse:
        return HealthResponse(version=__version__, models=services.registry.available)

    if scope in ("classify", "all"):
        add_classify_routes(app, services, current_caller)
    if scope in ("train", "all"):
        add_train_routes(app, services, current_caller)
    return app


Middleware = Callable[[APIGatewayHttpResolver, NextMiddleware], Response[Any]]


def add_request_id(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    response = next_middleware(app)
    response.headers["x-request-id"] = request_id_of(app)
    return response


def body_size_limit(limit: int) -> Middleware:
    """A middleware answering 413 to a body over ``limit`` bytes."""

    def limit_body_size(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
        body = app.current_event.body or ""
        if len(body) > limit:
            raise PayloadTooLarge(f"The request body is {len(body)} bytes; at most {limit} are accepted.")
        return next_middleware(app)

    return limit_body_size


def quota_charge(services: Services) -> Middleware:
    """A middleware charging the request's tokens to the caller's key on ``services.limiter``."""

    def charge_quota(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
        # What was embedded is charged whatever the outcome: a request failing after some work (a
        # bad 21st input) pays for the work done. An error's answer is built by the exception
        # handlers after this middleware, so only a normal answer carries the rate-limit headers.
        try:
            response = next_middleware(app)
        except Exception:
            key_id = app.context.get("quota_key_id")
            if key_id and current_tokens():
                try:
                    services.limiter.charge(key_id, current_tokens())
                except LabelwiseError:  # the request's own error is the answer; say the charge failed
                    logger.warning("quota charge of a failed request failed", exc_info=True)
            raise
        key_id = app.context.get("quota_key_id")
        if key_id:
            response.headers.update(services.limiter.charge(key_id, current_tokens()).headers())
        return response

    return charge_quota


def add_classify_routes(
    app: APIGatewayHttpResolver, services: Services, current_caller: Callable[[Request], ApiKeyRecord]
) -> None:
    """``/v1/classify`` and ``/v1/embeddings`` (the classify function's routes)."""
    Caller = Annotated[ApiKeyRecord, Depends(current_caller)]

    @app.post(
        "/v1/classify",
        summary="Classify texts zero-shot (with labels) or with a trained classifier",
        tags=["classify"],
        responses=classify_responses("One classification per input."),
    )
    def classify(
        request: Annotated[AnyClassifyRequest, Body()], caller: Caller
    ) -> ClassifyResponse | CohereClassifyResponse:
        if isinstance(request, CohereClassifyRequest):
            return cohere_mapping.classify(request, services, caller)
        return mapping.classify(request, services, caller)

    @app.post(
        "/v1/embeddings",
        summary="Embed texts (Jina's and OpenAI's embeddings shape): the vectors classify compares",
        tags=["embeddings"],
        responses=responses("One embedding per input text."),
    )
    def embeddings(request: Annotated[EmbeddingsRequest, Body()], caller: Caller) -> EmbeddingsResponse:
        return mapping.embeddings(request, services, caller)


def add_train_routes(
    app: APIGatewayHttpResolver, services: Services, current_caller: Callable[[Request], ApiKeyRecord]
) -> None:
    """``/v1/train`` and ``/v1/classifiers`` (the train function's routes)."""
    Caller = Annotated[ApiKeyRecord, Depends(current_caller)]

    @app.post(
        "/v1/train",
        summary="Create or update a few-shot classifier (examples are learned, never stored)",
        tags=["train"],
        responses=responses("The classifier after this batch."),
    )
    def train(request: Annotated[TrainRequest, Body()], caller: Caller) -> TrainResponse:
        return mapping.train(request, services, caller)

    @app.route(
        "/v1/classifiers",
        method=["GET", "POST"],
        summary="The caller's classifiers (GET, or Jina's POST form)",
        tags=["train"],
        responses=responses("The caller's classifiers, oldest first (Jina's bare array)."),
    )
    def list_classifiers(caller: Caller) -> list[ClassifierSummary]:
        return mapping.list_classifiers(services, caller)

    @app.get(
        "/v1/classifiers/<classifier_id>",
        summary="A classifier's metadata (never its examples)",
        tags=["train"],
        responses=responses("The classifier's metadata."),
    )
    def get_classifier(classifier_id: Annotated[str, Path()], caller: Caller) -> ClassifierInfo:
        return mapping.get_classifier(classifier_id, services, caller)

    @app.delete(
        "/v1/classifiers/<classifier_id>",
        summary="Delete a classifier and all its versions",
        tags=["train"],
        responses=responses("Deleted."),
    )
    def delete_classifier(classifier_id: Annotated[str, Path()], caller: Caller) -> DeleteResponse:
        return mapping.delete_classifier(classifier_id, services, caller)


OPENAPI_INFO: dict[str, Any] = {
    "title": API_TITLE,
    "version": __version__,
    "description": API_DESCRIPTION,
    "security_schemes": SECURITY_SCHEMES,
    "security": SECURITY,
}


def openapi_json(services: Services) -> str:
    """The OpenAPI document of the whole API (every scope)."""
    app = create_app(services, scope="all")
    return app.get_openapi_json_schema(**OPENAPI_INFO)
