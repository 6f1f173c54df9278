"""The request's time budget, checked between units of embedding work (one embedding call, one
onnxruntime call). The deadline itself is request-scoped state (:mod:`labelwise.request_context`,
set by the HTTP layer); outside a request there is none and nothing is checked."""

from __future__ import annotations

from labelwise.errors import RequestTimeout
from labelwise.request_context import current_deadline, deadline_passed


def check_deadline() -> None:
    """Raise :class:`RequestTimeout` (504) when the current request has run past its budget."""
    if not deadline_passed():
        return
    deadline = current_deadline()
    budget = f" ({deadline.budget_s:.1f} s)" if deadline is not None else ""
    raise RequestTimeout(
        f"The request ran past its time budget{budget} before its embeddings were done. Send fewer or"
        " shorter inputs per request, or classify large batches as a file with S3 uploads"
        " (docs/uploads.md), which has no per-request time limit."
    )
