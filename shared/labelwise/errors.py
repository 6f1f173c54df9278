"""Domain errors.

Plain exception classes; :mod:`labelwise.http_status` holds their HTTP statuses (one table, which
the API and the embedding endpoint both use) and :mod:`labelwise.api.errors` the documented error
body. Adapters wrap provider errors into these
(``raise StoreUnavailable(...) from exc``). Never match on message text.
"""

from __future__ import annotations


class LabelwiseError(Exception):
    """Base class. ``code`` is the machine-readable error code (Jina's codes where they fit)."""

    code = "INTERNAL_ERROR"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    @property
    def headers(self) -> dict[str, str]:
        """Extra HTTP headers the error's answer carries (e.g. rate-limit headers)."""
        return {}


class InvalidInput(LabelwiseError):
    """The request is well-formed JSON but semantically invalid (400)."""

    code = "INPUT_INVALID"


class InvalidLabels(InvalidInput):
    code = "INPUT_INVALID_LABELS"


class LabelLimitExceeded(InvalidInput):
    code = "INPUT_LABEL_LIMIT_EXCEEDED"


class InputLimitExceeded(InvalidInput):
    code = "INPUT_LIMIT_EXCEEDED"


class InputTooLong(InvalidInput):
    """A text exceeds the model window and the request asked not to truncate."""

    code = "INPUT_TOO_LONG"


class UnsupportedInput(InvalidInput):
    """An input kind this deployment cannot handle yet (e.g. images without an image model)."""

    code = "INPUT_UNSUPPORTED"


class InvalidImage(InvalidInput):
    """An image input could not be used: bad base64, not an image, too large, or a refused URL."""

    code = "INPUT_INVALID_IMAGE"


class ModelNotFound(InvalidInput):
    code = "INPUT_MODEL_NOT_FOUND"


class ModelMismatch(InvalidInput):
    code = "INPUT_MODEL_MISMATCH"


class MalformedBody(LabelwiseError):
    """The body is not JSON at all (400)."""

    code = "INPUT_MALFORMED_JSON"


class PayloadTooLarge(LabelwiseError):
    code = "INPUT_PAYLOAD_TOO_LARGE"


class WorkLimitExceeded(PayloadTooLarge):
    """A request asking for more work than one request may do (413); send less, or use S3 uploads."""

    code = "INPUT_WORK_LIMIT_EXCEEDED"


class TokenLimitExceeded(WorkLimitExceeded):
    """More tokens to embed than ``max_request_tokens`` (counted before embedding)."""

    code = "INPUT_TOKEN_LIMIT_EXCEEDED"


class PixelLimitExceeded(WorkLimitExceeded):
    """Image inputs with more pixels in all than ``max_request_pixels`` (read from their headers)."""

    code = "INPUT_PIXEL_LIMIT_EXCEEDED"


class ResponseTooLarge(LabelwiseError):
    """The answer to this request could not fit in one response (Lambda's 6 MB; 400, as Jina's API
    answers a request it cannot serve: its reference lists no 413)."""

    code = "RESPONSE_TOO_LARGE"


class Unauthenticated(LabelwiseError):
    """No usable API key (401). The subclasses carry Jina's three codes."""

    code = "AUTH_INVALID_API_KEY"


class MissingApiKey(Unauthenticated):
    code = "AUTH_MISSING_API_KEY"


class InvalidApiKey(Unauthenticated):
    """Unknown or revoked key."""

    code = "AUTH_INVALID_API_KEY"


class InvalidAuthFormat(Unauthenticated):
    """An ``Authorization`` header that is not ``Bearer <key>``."""

    code = "AUTH_INVALID_FORMAT"


class ResourceNotFound(LabelwiseError):
    """Unknown id, or one the caller may not see: the two are indistinguishable on purpose."""

    code = "RESOURCE_NOT_FOUND"


class ResourceLimitExceeded(LabelwiseError):
    code = "AUTHZ_RESOURCE_LIMIT_EXCEEDED"


class Conflict(LabelwiseError):
    """A conditional write kept losing to concurrent writers."""

    code = "CONFLICT_RESOURCE_BUSY"


class RateLimited(LabelwiseError):
    """429. The subclasses say which per-minute quota ran out (Jina's codes)."""

    code = "RATE_REQUEST_LIMIT_EXCEEDED"


class RequestRateLimited(RateLimited):
    code = "RATE_REQUEST_LIMIT_EXCEEDED"


class TokenRateLimited(RateLimited):
    code = "RATE_TOKEN_LIMIT_EXCEEDED"


class ServiceUnavailable(LabelwiseError):
    """A dependency (store, model file, endpoint) is down; the request may be retried."""

    code = "SERVICE_UNAVAILABLE"


class RequestTimeout(LabelwiseError):
    """The request ran past a time budget of its own (504): fetching its image URLs
    (``image_fetch_deadline_s``), or its work as a whole (``request_budget_s``, and in Lambda the
    invocation's remaining time less a margin; checked between units of work, so the caller gets an
    answer instead of API Gateway's or Lambda's cut-off)."""

    code = "SERVICE_TIMEOUT"


class StoreUnavailable(ServiceUnavailable):
    pass


class ServerBusy(ServiceUnavailable):
    """``labelwise serve`` already serves ``http_max_connections`` connections (503, Retry-After)."""

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class ClientTimeout(LabelwiseError):
    """The client stopped sending inside its request for longer than ``http_idle_timeout_s`` (408,
    ``labelwise serve``; through API Gateway, the gateway answers this itself)."""

    code = "REQUEST_TIMEOUT"


class EmbedderUnavailable(ServiceUnavailable):
    pass


class InvalidContentLength(MalformedBody):
    """A ``Content-Length`` that is not one non-negative decimal number (400)."""

    code = "INPUT_INVALID_CONTENT_LENGTH"


class InvalidChunkedBody(MalformedBody):
    """A ``Transfer-Encoding: chunked`` body whose framing is broken or cut short (400)."""

    code = "INPUT_INVALID_CHUNKED_BODY"


class UnsupportedTransferEncoding(LabelwiseError):
    """A transfer coding other than ``chunked`` (``gzip``, ``identity``, ...) (501, RFC 9112 6.1)."""

    code = "INPUT_UNSUPPORTED_TRANSFER_ENCODING"


class UnsupportedMediaType(LabelwiseError):
    """The body is declared as something other than JSON (415)."""

    code = "INPUT_UNSUPPORTED_MEDIA_TYPE"


class MethodNotAllowed(LabelwiseError):
    """The path is a route, but not for this method (405, with an ``Allow`` header)."""

    code = "METHOD_NOT_ALLOWED"

    def __init__(self, detail: str, allow: list[str]) -> None:
        super().__init__(detail)
        self.allow = allow

    @property
    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allow)}
