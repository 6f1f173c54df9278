"""Request-scoped state: what the request being served has used so far (one module owns it all).

The library records, the HTTP layer reads; neither side imports the other::

    with request_scope(request_id) as scope:   # telemetry.TelemetryResolver, once per request
        ...                                     # the route runs; deep inside it:
        record_tokens(n)                        #   embedders (billing, quota, metrics)
        record_model(name)                      #   ModelRegistry.get: the model chosen
        record_caller(key_id)                   #   the API layer, once the key is known
        note_backend("endpoint")                #   endpoint routing: where embeddings ran
        deadline_passed()                       #   embedders, between units of work
    scope.tokens, scope.backend                 # what the request used (also after the block)

Each item is a :class:`~contextvars.ContextVar`, so concurrent requests (threads, tasks) never
mix. Outside a scope, tokens and backends are not recorded (reads give 0 / None) and there is no
deadline; the smaller blocks :func:`metering`, :func:`track_backend` and :func:`request_deadline`
open one item each (tests, the CLI).
Nothing here may import another labelwise module: every layer may import this one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Literal

# -- request id ----------------------------------------------------------------------------------

_request_id: ContextVar[str] = ContextVar("labelwise_request_id", default="-")


def current_request_id() -> str:
    """The id of the request being served (API Gateway's), ``"-"`` outside one."""
    return _request_id.get()


# -- tokens: every embedding call of a request adds its tokens -----------------------------------

_meter: ContextVar[list[int] | None] = ContextVar("labelwise_token_meter", default=None)


def record_tokens(tokens: int) -> None:
    """Called by embedders: count ``tokens`` toward the current request, if one is metered."""
    meter = _meter.get()
    if meter is not None:
        meter[0] += tokens


def current_tokens() -> int:
    """Tokens embedded so far by the current (metered) request."""
    meter = _meter.get()
    return meter[0] if meter is not None else 0


@contextlib.contextmanager
def metering() -> Iterator[list[int]]:
    """Meter the block: yields a one-element list holding the tokens embedded so far."""
    meter = [0]
    token = _meter.set(meter)
    try:
        yield meter
    finally:
        _meter.reset(token)


# -- model and API key ---------------------------------------------------------------------------

_model: ContextVar[str | None] = ContextVar("labelwise_model", default=None)
_key_id: ContextVar[str | None] = ContextVar("labelwise_key_id", default=None)


def record_model(name: str) -> None:
    """Called when a model is chosen for the current request."""
    _model.set(name)


def current_model() -> str | None:
    return _model.get()


def record_caller(key_id: str) -> None:
    """Called when the request's API key is known (its id, never the key)."""
    _key_id.set(key_id)


def current_key_id() -> str | None:
    return _key_id.get()


# -- embedding backend ---------------------------------------------------------------------------

Backend = Literal["local", "endpoint", "fallback"]
#: The response header that names the backend a request used.
BACKEND_HEADER = "x-labelwise-backend"
#: A request that used several backends reports the most notable: fallback > endpoint > local.
_RANK: dict[str, int] = {"local": 0, "endpoint": 1, "fallback": 2}


@dataclass
class BackendRecord:
    """The backend(s) one request used; ``value`` is what the header says."""

    value: Backend = "local"

    def note(self, backend: Backend) -> None:
        if _RANK[backend] > _RANK[self.value]:
            self.value = backend


_backend: ContextVar[BackendRecord | None] = ContextVar("labelwise_backend", default=None)


@contextlib.contextmanager
def track_backend() -> Iterator[BackendRecord]:
    """Record the embedding backends used inside the block (one request)."""
    record = BackendRecord()
    token = _backend.set(record)
    try:
        yield record
    finally:
        _backend.reset(token)


def note_backend(backend: Backend) -> None:
    """Called by the embedding router: ``backend`` embedded something for the current request."""
    record = _backend.get()
    if record is not None:
        record.note(backend)


def current_backend() -> Backend | None:
    """The backend of the request being tracked, or None outside :func:`track_backend`."""
    record = _backend.get()
    return record.value if record is not None else None


# -- deadline: the request's time budget ----------------------------------------------------------


@dataclass(frozen=True)
class Deadline:
    """When the current request's budget runs out (``time.monotonic()`` seconds), and its size."""

    at: float
    budget_s: float

    @classmethod
    def after(cls, budget_s: float) -> Deadline:
        return cls(time.monotonic() + budget_s, budget_s)

    def remaining_s(self) -> float:
        return self.at - time.monotonic()


_deadline: ContextVar[Deadline | None] = ContextVar("labelwise_deadline", default=None)


def current_deadline() -> Deadline | None:
    """The current request's deadline, or None (no budget: outside a request, uploads, the CLI)."""
    return _deadline.get()


def deadline_passed() -> bool:
    """Whether the current request has run past its budget (never, outside one)."""
    deadline = _deadline.get()
    return deadline is not None and time.monotonic() >= deadline.at


@contextlib.contextmanager
def request_deadline(budget_s: float | None) -> Iterator[Deadline | None]:
    """Give the block a budget of ``budget_s`` seconds from now (None: no deadline)."""
    deadline = None if budget_s is None else Deadline.after(budget_s)
    token = _deadline.set(deadline)
    try:
        yield deadline
    finally:
        _deadline.reset(token)


# -- one request ---------------------------------------------------------------------------------


@dataclass
class RequestScope:
    """What one request used; readable during and after its :func:`request_scope` block."""

    request_id: str
    meter: list[int] = field(default_factory=lambda: [0])
    backend_record: BackendRecord = field(default_factory=BackendRecord)
    deadline: Deadline | None = None

    @property
    def tokens(self) -> int:
        return self.meter[0]

    @property
    def backend(self) -> Backend:
        return self.backend_record.value


@contextlib.contextmanager
def request_scope(request_id: str, budget_s: float | None = None) -> Iterator[RequestScope]:
    """One request: its id, and fresh token meter, model, key id and backend record; a deadline
    ``budget_s`` seconds from now when given."""
    scope = RequestScope(request_id, deadline=None if budget_s is None else Deadline.after(budget_s))
    tokens = (
        _request_id.set(request_id),
        _model.set(None),
        _key_id.set(None),
        _meter.set(scope.meter),
        _backend.set(scope.backend_record),
    )
    deadline_token = _deadline.set(scope.deadline)
    try:
        yield scope
    finally:
        _deadline.reset(deadline_token)
        _backend.reset(tokens[4])
        _meter.reset(tokens[3])
        _key_id.reset(tokens[2])
        _model.reset(tokens[1])
        _request_id.reset(tokens[0])
