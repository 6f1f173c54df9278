"""The one place that maps errors to HTTP statuses and the error envelope.

Domain errors (:mod:`labelwise.errors`) carry a ``code``; their HTTP status is looked up by class
(most specific first) in :mod:`labelwise.http_status`, never by message text. Schema violations
become 422 with a list of ``{field, message, type}``; a body that is not JSON becomes 400; anything
unexpected becomes a 500 whose body reveals nothing but the request id.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)

from labelwise import errors
from labelwise.api.cohere_schemas import CohereError, is_cohere_shape
from labelwise.api.schemas import ErrorDetail, ErrorResponse
from labelwise.http_status import STATUS_BY_ERROR as STATUS_BY_ERROR  # re-exported: the one table
from labelwise.http_status import status_for as status_for  # re-exported

logger = logging.getLogger(__name__)


def allowed_methods(app: APIGatewayHttpResolver, path: str) -> list[str]:
    """The methods of ``app``'s routes whose path pattern matches ``path`` (empty: no such route)."""
    routes = getattr(app, "_static_routes", []) + getattr(app, "_dynamic_routes", [])
    return sorted({route.method for route in routes if route.rule.match(path)})


def request_id_of(app: APIGatewayHttpResolver) -> str:
    try:
        return str(app.current_event.request_context.request_id or "")
    except (AttributeError, KeyError, TypeError):
        return ""


def error_response(
    status: int,
    code: str,
    detail: str,
    request_id: str,
    details: list[ErrorDetail] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    body = ErrorResponse(code=code, detail=detail, request_id=request_id, errors=details)
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body.model_dump_json(exclude_none=True),
        headers={"x-request-id": request_id, **(headers or {})},
    )


#: Union tags pydantic puts in error locations of the classify body (``body.jina.labels``).
SHAPE_TAGS = ("jina", "cohere")


def _field_path(loc: Any) -> str:
    if not isinstance(loc, list | tuple):
        return str(loc)
    parts = [p for i, p in enumerate(loc) if not (i == 1 and p in SHAPE_TAGS)]
    return ".".join(str(part) for part in parts)


def is_cohere_request(app: APIGatewayHttpResolver) -> bool:
    """Whether the request is in Cohere's classify shape (its errors then use Cohere's envelope)."""
    try:
        body = app.current_event.json_body
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return is_cohere_shape(body)


def cohere_error_response(
    status: int, detail: str, request_id: str, headers: dict[str, str] | None = None
) -> Response[str]:
    """Cohere's error envelope ``{"message": ...}``; Cohere answers schema violations with 400."""
    return Response(
        status_code=400 if status == 422 else status,
        content_type=content_types.APPLICATION_JSON,
        body=CohereError(message=detail).model_dump_json(),
        headers={"x-request-id": request_id, **(headers or {})},
    )


def validation_details(exc: RequestValidationError) -> list[ErrorDetail]:
    return [
        ErrorDetail(
            field=_field_path(err.get("loc", ())),
            message=str(err.get("msg", "invalid")),
            type=str(err.get("type", "value_error")),
        )
        for err in exc.errors()
    ]


def register_error_handlers(
    app: APIGatewayHttpResolver, authenticate: Callable[[dict[str, str]], object] | None = None
) -> None:
    """Install the exception handlers on ``app``.

    ``authenticate`` (raising :class:`labelwise.errors.Unauthenticated`) lets a request that is both
    unauthenticated and malformed get its 401 first, as if authentication ran before validation.
    """
    handlers = _ErrorHandlers(app, authenticate)
    app.exception_handler(errors.LabelwiseError)(handlers.domain_error)
    app.exception_handler(RequestUnsupportedContentType)(handlers.unsupported_media_type)
    app.exception_handler(RequestValidationError)(handlers.validation_error)
    app.exception_handler([UnicodeDecodeError, RecursionError])(handlers.undecodable_body)
    app.not_found(handlers.not_found)
    app.exception_handler(Exception)(handlers.unexpected)


def invalid_json_detail(exc: RequestValidationError) -> str:
    """The 400 detail of a body that is not JSON, with the parser's reason when it gave one."""
    reason = next(
        (str((e.get("ctx") or {}).get("error", "")) for e in exc.errors() if e.get("type") == "json_invalid"),
        "",
    )
    return (
        f"The request body is not valid JSON: {reason}." if reason else "The request body is not valid JSON."
    )


class _ErrorHandlers:
    """The exception handlers of one app (see :func:`register_error_handlers`)."""

    def __init__(
        self, app: APIGatewayHttpResolver, authenticate: Callable[[dict[str, str]], object] | None
    ) -> None:
        self.app = app
        self.authenticate = authenticate

    def respond(
        self,
        status: int,
        code: str,
        detail: str,
        details: list[ErrorDetail] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response[str]:
        request_id = request_id_of(self.app)
        if is_cohere_request(self.app):
            return cohere_error_response(status, detail, request_id, headers)
        return error_response(status, code, detail, request_id, details, headers)

    def unauthenticated(self) -> Response[str] | None:
        if self.authenticate is None:
            return None
        try:
            self.authenticate(dict(self.app.current_event.headers or {}))
        except errors.Unauthenticated as exc:
            return self.respond(401, exc.code, exc.detail)
        except errors.LabelwiseError:
            return None
        return None

    def declared_media_type(self) -> str:
        headers = {k.lower(): v for k, v in (self.app.current_event.headers or {}).items()}
        return str(headers.get("content-type", "")).strip()

    def not_json(self) -> Response[str]:
        refused = errors.UnsupportedMediaType(
            "The body must be JSON, sent with `Content-Type: application/json` "
            f"(this request declared {self.declared_media_type()!r}; `curl -d` needs "
            "`-H 'Content-Type: application/json'`)."
        )
        return self.respond(415, refused.code, refused.detail)

    def domain_error(self, exc: errors.LabelwiseError) -> Response[str]:
        status = status_for(exc)
        if status >= 500:
            what = "past its time budget" if status == 504 else "dependency unavailable"
            logger.warning("%s: %s", what, type(exc).__name__, exc_info=exc)
        return self.respond(status, exc.code, exc.detail, headers=exc.headers)

    def unsupported_media_type(self, exc: RequestUnsupportedContentType) -> Response[str]:
        # Powertools parses only JSON and form bodies; anything else is a 415, not a 500.
        denied = self.unauthenticated()
        return denied if denied is not None else self.not_json()

    def validation_error(self, exc: RequestValidationError) -> Response[str]:
        denied = self.unauthenticated()
        if denied is not None:
            return denied
        media = self.declared_media_type().split(";")[0].strip().lower()
        if media and media != "application/json" and not media.endswith("+json"):
            # Powertools parsed the body as a form (curl -d's default) or multipart, so every field
            # looks missing: say what is wrong instead.
            return self.not_json()
        details = validation_details(exc)
        if any(d.type == "json_invalid" for d in details):
            return self.respond(400, errors.MalformedBody.code, invalid_json_detail(exc))
        summary = "; ".join(f"{d.field}: {d.message}" for d in details[:5])
        return self.respond(
            422, "INPUT_VALIDATION_ERROR", f"Request does not match the schema: {summary}", details
        )

    def undecodable_body(self, exc: Exception) -> Response[str]:
        # Raised while Powertools decodes the body: not UTF-8, or JSON nested too deeply to parse.
        denied = self.unauthenticated()
        if denied is not None:
            return denied
        return self.respond(400, errors.MalformedBody.code, "The request body is not valid UTF-8 JSON.")

    def not_found(self, exc: Exception) -> Response[str]:
        app = self.app
        allow = allowed_methods(app, app.current_event.path)
        if allow:
            refused = errors.MethodNotAllowed(
                f"{app.current_event.http_method} is not served here; use {', '.join(allow)}.", allow
            )
            return self.respond(405, refused.code, refused.detail, headers=refused.headers)
        return self.respond(404, "ROUTE_NOT_FOUND", "No such route. See /openapi.json for the API.")

    def unexpected(self, exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return self.respond(500, "INTERNAL_ERROR", "Internal error; quote the request id.")
