"""The HTTP status of each domain error (:mod:`labelwise.errors`), looked up by class, most specific
first, never by message text. The API (:mod:`labelwise.api.errors`) and the embedding endpoint's
container (:mod:`labelwise.endpoint.container`) both answer with it."""

from __future__ import annotations

from labelwise import errors

STATUS_BY_ERROR: dict[type[errors.LabelwiseError], int] = {
    errors.InvalidInput: 400,
    errors.MalformedBody: 400,
    errors.Unauthenticated: 401,
    errors.ResourceLimitExceeded: 403,
    errors.ResourceNotFound: 404,
    errors.MethodNotAllowed: 405,
    errors.ClientTimeout: 408,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.ResponseTooLarge: 400,
    errors.UnsupportedMediaType: 415,
    errors.RateLimited: 429,
    errors.UnsupportedTransferEncoding: 501,
    errors.ServiceUnavailable: 503,
    errors.RequestTimeout: 504,
}


def status_for(exc: errors.LabelwiseError, default: int = 500) -> int:
    """The status of the nearest class of ``exc`` in :data:`STATUS_BY_ERROR`, else ``default``."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return default
