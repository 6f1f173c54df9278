"""The one error -> HTTP status table (labelwise.http_status), as the API and the endpoint use it."""

from __future__ import annotations

import json

import pytest

from labelwise import errors
from labelwise.endpoint.container import handle_invocation
from labelwise.endpoint.protocol import PROTOCOL_VERSION
from labelwise.http_status import status_for


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.InvalidImage("bad"), 400),  # an InvalidInput
        (errors.InvalidChunkedBody("bad"), 400),  # a MalformedBody
        (errors.MissingApiKey("none"), 401),
        (errors.PixelLimitExceeded("big"), 413),  # a PayloadTooLarge
        (errors.TokenRateLimited("slow down"), 429),
        (errors.EmbedderUnavailable("down"), 503),  # a ServiceUnavailable
        (errors.RequestTimeout("late"), 504),
    ],
)
def test_the_nearest_listed_class_decides(error: errors.LabelwiseError, status: int) -> None:
    # Given a domain error whose class, or a base class, is in the table
    # Then its status is the nearest one's
    assert status_for(error) == status


def test_an_unlisted_error_gets_the_default() -> None:
    # Given an error no class of which is listed
    error = errors.LabelwiseError("what")
    # Then the API's default is 500, and a caller may pick another
    assert status_for(error) == 500
    assert status_for(error, default=503) == 503


class Raising:
    """Endpoint models whose every invocation raises ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def invoke(self, request: object) -> object:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.ModelNotFound("no such model"), 400),
        (errors.PixelLimitExceeded("too many pixels"), 413),
        (errors.EmbedderUnavailable("cuda died"), 503),
        (errors.LabelwiseError("anything else"), 503),
    ],
)
def test_the_endpoint_answers_with_the_table_and_503_otherwise(
    error: errors.LabelwiseError, status: int
) -> None:
    # Given endpoint models that fail with a domain error
    body = json.dumps({"version": PROTOCOL_VERSION, "op": "embed", "inputs": ["x"]}).encode()
    # When an invocation is handled
    got, answer = handle_invocation(Raising(error), body)  # type: ignore[arg-type]
    # Then the status is the table's (a dependency failure, 503, for unlisted errors) with the code
    assert got == status
    assert json.loads(answer)["error"]["code"] == error.code
