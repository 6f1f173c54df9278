"""The HTTP application: routes over the library, shared by the Lambda functions and `labelwise serve`.

Route functions are thin: the resolver validates the request model, the route calls one library
function and returns its response model. Which routes an app serves follows the deployment:
the classify function serves ``/v1/classify``, the train function the stateful routes, and the
local server all of them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.params import Body

from labelwise import __version__
from labelwise.api.errors import register_error_handlers, request_id_of
from labelwise.api.schemas import ClassifyRequest, ClassifyResponse, ErrorResponse, HealthResponse
from labelwise.classify import service
from labelwise.errors import PayloadTooLarge
from labelwise.runtime import Services

Scope = Literal["classify", "train", "all"]

API_TITLE = "labelwise"
API_DESCRIPTION = (
    "Self-hosted zero-shot and few-shot classification of text, compatible with Jina AI's "
    "Classifier API and Cohere's classify."
)

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"description": desc, "content": {"application/json": {"model": ErrorResponse}}}
    for code, desc in {
        400: "Invalid input (bad labels, empty text, unknown model, body not JSON).",
        401: "Missing or invalid API key.",
        413: "Request body too large.",
        422: "The body does not match the schema.",
        503: "A dependency (model, store) is unavailable; retry later.",
    }.items()
}


def create_app(services: Services, scope: Scope = "all") -> APIGatewayHttpResolver:
    """An API Gateway HTTP API (payload v2) resolver serving ``scope``'s routes over ``services``."""
    app = APIGatewayHttpResolver(enable_validation=True)
    register_error_handlers(app)

    def limit_body_size(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
        body = app.current_event.body or ""
        if len(body) > services.settings.max_body_bytes:
            raise PayloadTooLarge(
                f"The request body is {len(body)} bytes; at most {services.settings.max_body_bytes} are accepted."
            )
        return next_middleware(app)

    def add_request_id(app: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response:
        response = next_middleware(app)
        response.headers["x-request-id"] = request_id_of(app)
        return response

    app.use(middlewares=[add_request_id, limit_body_size])

    @app.get("/health", summary="Liveness and the models this deployment serves", tags=["meta"])
    def health() -> HealthResponse:
        return HealthResponse(version=__version__, models=services.registry.available)

    if scope in ("classify", "all"):

        @app.post(
            "/v1/classify",
            summary="Classify texts zero-shot (with labels) or with a trained classifier",
            tags=["classify"],
            responses={200: {"description": "One classification per input."}, **ERROR_RESPONSES},
        )
        def classify(request: Annotated[ClassifyRequest, Body()]) -> ClassifyResponse:
            return service.classify(request, services)

    return app


def openapi_json(services: Services) -> str:
    """The OpenAPI document of the whole API (every scope)."""
    app = create_app(services, scope="all")
    return app.get_openapi_json_schema(
        title=API_TITLE, version=__version__, description=API_DESCRIPTION
    )
