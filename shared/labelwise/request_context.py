"""Request-scoped state: what the request being served has used so far (one module owns it all).

The library records, the HTTP layer reads; neither side imports the other::

    with request_scope(request_id) as scope:   # telemetry.TelemetryResolver, once per request
        ...                                     # the route runs; deep inside it:
        record_tokens(n)                        #   embedders (billing, quota, metrics)
        record_model(name)                      #   ModelRegistry.get: the model chosen
        record_caller(key_id)                   #   the API layer, once the key is known
        note_backend("endpoint")                #   endpoint routing: where embeddings ran
    scope.tokens, scope.backend                 # what the request used (also after the block)

Each item is a :class:`~contextvars.ContextVar`, so concurrent requests (threads, tasks) never
mix. Outside a scope, tokens and backends are not recorded (reads give 0 / None); the smaller
blocks :func:`metering` and :func:`track_backend` open one item each (tests, the CLI).
Nothing here may import another labelwise module: every layer may import this one.
"""

from __future__ import annotations

import contextlib
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


# -- one request ---------------------------------------------------------------------------------


@dataclass
class RequestScope:
    """What one request used; readable during and after its :func:`request_scope` block."""

    request_id: str
    meter: list[int] = field(default_factory=lambda: [0])
    backend_record: BackendRecord = field(default_factory=BackendRecord)

    @property
    def tokens(self) -> int:
        return self.meter[0]

    @property
    def backend(self) -> Backend:
        return self.backend_record.value


@contextlib.contextmanager
def request_scope(request_id: str) -> Iterator[RequestScope]:
    """One request: its id, and fresh token meter, model, key id and backend record."""
    scope = RequestScope(request_id)
    tokens = (
        _request_id.set(request_id),
        _model.set(None),
        _key_id.set(None),
        _meter.set(scope.meter),
        _backend.set(scope.backend_record),
    )
    try:
        yield scope
    finally:
        _backend.reset(tokens[4])
        _meter.reset(tokens[3])
        _key_id.reset(tokens[2])
        _model.reset(tokens[1])
        _request_id.reset(tokens[0])
