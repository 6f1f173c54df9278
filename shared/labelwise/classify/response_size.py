"""Upper bounds on the size of an API answer, computed from the request before any work is done.

Lambda refuses a synchronous response over 6 MB, and the client then sees a 500 from API Gateway
(issue 12, item 10). What counts is the handler's return value as the runtime serialises it: the API
Gateway proxy envelope ``{"statusCode": ..., "headers": {...}, "body": "<the JSON body, escaped>"}``.
Every character of the body's JSON (written with ``ensure_ascii``) becomes at most two characters in
the envelope (``"`` -> ``\\"``, ``\\`` -> ``\\\\``), so twice the body is a safe bound; the functions
below bound the body from the request alone (labels, input count, ``top_n``, dimension), so that a
request whose answer could not fit is refused up front with :class:`ResponseTooLarge`. The local
server applies the same limit, so a request behaves the same on a laptop and on AWS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from labelwise.errors import ResponseTooLarge

#: Lambda's synchronous response limit (6 MB), on the serialised proxy envelope.
LAMBDA_RESPONSE_LIMIT = 6_000_000
#: The envelope's status, headers (request id, rate-limit headers, ...) and the body's fixed fields.
ENVELOPE_BYTES = 4096
#: ``{"label":...,"score":...},`` without the label, escaped once more, with a float's longest repr.
PREDICTION_BYTES = 64
#: A classification row without its labels and predictions (object, index, score, truncated, ...).
ROW_BYTES = 256
#: One float of a JSON list (``repr`` of a float32 widened to float64 is at most 24 characters) and its comma.
FLOAT_BYTES = 25
#: An embedding row without its vector.
EMBEDDING_ROW_BYTES = 128


def escaped_len(text: str) -> int:
    """Bound on the bytes ``text`` takes as a JSON string inside the body inside the envelope."""
    return 2 * len(json.dumps(text))


def classify_bytes_bound(
    n_inputs: int, groups: Mapping[str, Sequence[str]], top_n: int | None, multi_label: bool = False
) -> int:
    """Bound on ``/v1/classify``'s Lambda response for ``n_inputs`` inputs scored against ``groups``
    (name -> labels; the single unnamed group of a plain list has the name ``""``), each row listing
    the ``top_n`` best labels per group (all when ``None``); ``multi_label`` rows may also list every
    label of a group as their ``prediction``."""
    per_row = ROW_BYTES
    for name, labels in groups.items():
        sizes = sorted((escaped_len(label) for label in labels), reverse=True)
        shown = sizes[: top_n if top_n is not None else len(sizes)]
        # the group's name keys prediction, score and predictions; the best label is repeated
        per_row += 3 * escaped_len(name) + sizes[0] + PREDICTION_BYTES
        per_row += sum(shown) + PREDICTION_BYTES * len(shown)
        if multi_label:
            per_row += sum(sizes) + 2 * len(sizes)
    return ENVELOPE_BYTES + n_inputs * per_row


def embeddings_bytes_bound(n_inputs: int, dimension: int, embedding_type: str) -> int:
    """Bound on ``/v1/embeddings``' Lambda response: float lists, or base64 of little-endian float32."""
    base64_chars = 4 * -(-(4 * dimension) // 3)  # never escaped
    per_vector = base64_chars if embedding_type == "base64" else FLOAT_BYTES * dimension
    return ENVELOPE_BYTES + n_inputs * (EMBEDDING_ROW_BYTES + per_vector)


def cohere_bytes_bound(inputs: Sequence[str], labels: Sequence[str]) -> int:
    """Bound on a Cohere-shaped classify answer: each row echoes its input and scores every label."""
    label_bytes = sum(escaped_len(label) + PREDICTION_BYTES for label in labels)
    longest = max(escaped_len(label) for label in labels)
    return ENVELOPE_BYTES + sum(ROW_BYTES + escaped_len(text) + 2 * longest + label_bytes for text in inputs)


def json_bytes_bound(payload: object) -> int:
    """Bound on the Lambda response whose body is ``payload`` (plain JSON values), for answers whose
    size is only known once they are built (the classifier listing)."""
    return ENVELOPE_BYTES + 2 * len(json.dumps(payload, ensure_ascii=True))


def check_response_size(bound: int, limit: int, remedy: str) -> None:
    """Raise :class:`ResponseTooLarge` when ``bound`` exceeds ``limit``, saying what to change."""
    if bound > limit:
        raise ResponseTooLarge(
            f"The answer to this request could take {bound:,} bytes, over the {limit / 1e6:g} MB a "
            f"response may have (Lambda's limit). {remedy} Large jobs can go through S3 uploads "
            "(docs/uploads.md)."
        )
