"""The work one request may ask for, counted before any of it is done.

A request's tokens (inputs, labels, examples; an image counts
:data:`~labelwise.embedding.pixels.IMAGE_TOKENS`) are counted with the model's own tokenizer (a
cheap pass, no embedding) and compared with ``Settings.max_request_tokens``, sized so that one
request's embedding stays well inside the API's 30 s at one vCPU. Bulk work belongs in S3 uploads,
which embed in batches under their own time checks and are not capped here.
"""

from __future__ import annotations

from collections.abc import Sequence

from labelwise.embedding.port import Embedder, Role
from labelwise.errors import TokenLimitExceeded


def count_tokens(embedder: Embedder, texts: Sequence[str], role: Role) -> int:
    """The tokens embedding ``texts`` would read (the tokenizer alone)."""
    return sum(embedder.count_tokens(list(texts), role)) if texts else 0


def check_request_tokens(tokens: int, limit: int | None) -> None:
    """Refuse (413) a request whose embedding would read more than ``limit`` tokens (0/None: no cap)."""
    if limit and tokens > limit:
        raise TokenLimitExceeded(
            f"This request would embed {tokens} tokens; at most {limit} tokens are accepted per request "
            "(`max_request_tokens`, about 20 s of work). Send fewer or shorter inputs per request, or "
            "classify them as a file through S3 uploads (docs/uploads.md)."
        )
