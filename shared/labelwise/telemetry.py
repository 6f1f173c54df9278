"""Per-request telemetry: request id in every log line, one access log line, metrics.

What is logged about a request: method, route (ids replaced by placeholders), status, model, API
key *id*, tokens, latency. Never a key, never a request body, never an input or example text.
The resolver wraps Powertools' ``resolve`` so that every answer is counted, errors included
(validation and authentication errors are answered before any route middleware runs).
Request-scoped state (tokens, model, key id, backend) is :mod:`labelwise.request_context`'s; this
module opens one :func:`~labelwise.request_context.request_scope` per request and reports it.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from labelwise.request_context import (
    BACKEND_HEADER,
    current_key_id,
    current_model,
    current_request_id,
    request_scope,
)

logger = logging.getLogger("labelwise.access")

_ID_SEGMENT = re.compile(r"^(/v1/classifiers/)[^/]+$")


def route_of(path: str) -> str:
    """The route template of ``path`` (classifier ids removed, so metrics have few dimensions)."""
    return _ID_SEGMENT.sub(r"\1{classifier_id}", path)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (for the local server's log format)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class OwnRequestResolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver that reads the request it resolves from itself, not the process.

    Powertools' ``resolve`` stores the event it is given and the Lambda context on the *class*
    ``BaseRouter`` (``BaseRouter.current_event = ...``, so that routers included without a reference
    to the resolver see them), and every resolver then reads ``self.current_event`` from there: one
    slot for the whole process. Two resolvers resolving at the same moment in two threads (the local
    server: a thread and a resolver per connection) overwrite each other's event, and each reads
    whichever was stored last: the other request's body (scored with its labels, trained into its
    classifier), headers (authenticated with its API key) and request id. The lazily built state a
    resolver's first request builds (route dependants, pydantic adapters) only widened the window.

    Here the event (as Powertools converts it, :meth:`_to_proxy_event`) and the context are kept on
    the instance, which is where the rest of a request's state (``context``) already is. A resolver
    still resolves one request at a time; concurrent requests need a resolver each, and nothing
    else is serialised. In Lambda a process runs one event at a time (and no labelwise code reads
    the event from another thread), so this never happened there; the fix applies there too.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._own_event: APIGatewayProxyEventV2 | None = None
        self._own_context: Any = None

    @property  # type: ignore[override]  # Powertools declares a (class) attribute
    def current_event(self) -> APIGatewayProxyEventV2:
        if self._own_event is None:
            raise AttributeError("current_event: this resolver has not resolved a request yet")  # as before
        return self._own_event

    @current_event.setter
    def current_event(self, event: APIGatewayProxyEventV2) -> None:
        self._own_event = event

    @property
    def lambda_context(self) -> Any:
        return self._own_context

    @lambda_context.setter
    def lambda_context(self, context: Any) -> None:
        self._own_context = context

    def _to_proxy_event(self, event: dict[str, Any]) -> APIGatewayProxyEventV2:
        """The event as Powertools converts it at the start of ``resolve``, kept on this resolver."""
        proxy = super()._to_proxy_event(event)
        assert isinstance(proxy, APIGatewayProxyEventV2)
        self._own_event = proxy
        return proxy

    def resolve(self, event: Any, context: Any) -> dict[str, Any]:
        self._own_context = context
        return super().resolve(event, context)

    async def resolve_async(self, event: Any, context: Any) -> dict[str, Any]:
        self._own_context = context
        return await super().resolve_async(event, context)


class TelemetryResolver(OwnRequestResolver):
    """Powertools' HTTP API resolver, plus request-scoped telemetry around each ``resolve``.

    ``metrics`` (a Powertools ``Metrics``, in Lambda) gets ``Requests``/``Tokens``/``Latency`` with
    the dimensions route, status and model; locally it is None and only the log line is written.

    Each request gets a deadline (:func:`budget_s`): ``budget_s`` seconds, and at most the Lambda
    invocation's remaining time less ``margin_ms`` when the context tells it.
    """

    def __init__(
        self,
        *args: Any,
        metrics: Any | None = None,
        budget_s: float | None = None,
        margin_ms: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.metrics = metrics
        self.budget_s = budget_s
        self.margin_ms = margin_ms

    def request_budget_s(self, context: Any) -> float | None:
        """This request's budget: ``budget_s``, capped by the invocation's remaining time (Lambda's
        ``context.get_remaining_time_in_millis()``) less the margin; None without either."""
        budget = self.budget_s
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        if callable(remaining):
            try:
                left = (float(remaining()) - self.margin_ms) / 1000
            except (TypeError, ValueError):
                return budget
            budget = left if budget is None else min(budget, left)
        return None if budget is None else max(budget, 0.0)

    def resolve(self, event: Any, context: Any) -> dict[str, Any]:
        started = time.perf_counter()
        request_id = str((event.get("requestContext") or {}).get("requestId") or "-")
        with request_scope(request_id, self.request_budget_s(context)) as scope:
            result = super().resolve(event, context)
            result.setdefault("headers", {})[BACKEND_HEADER] = scope.backend
            http = (event.get("requestContext") or {}).get("http") or {}
            self._record(
                str(http.get("method", "-")),
                route_of(str(event.get("rawPath") or http.get("path") or "-")),
                int(result.get("statusCode", 500)),
                scope.tokens,
                time.perf_counter() - started,
                scope.backend,
            )
            return result

    def _record(
        self, method: str, route: str, status: int, tokens: int, seconds: float, backend: str
    ) -> None:
        model = current_model() or "-"
        logger.info(
            "%s %s -> %d",
            method,
            route,
            status,
            extra={
                "backend": backend,
                "route": route,
                "status": status,
                "model": model,
                "key_id": current_key_id() or "-",
                "tokens": tokens,
                "latency_ms": round(seconds * 1000, 1),
            },
        )
        if self.metrics is not None:
            from aws_lambda_powertools.metrics import MetricUnit

            self.metrics.add_dimension(name="route", value=f"{method} {route}")
            self.metrics.add_dimension(name="status", value=str(status))
            self.metrics.add_dimension(name="model", value=model)
            self.metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
            self.metrics.add_metric(name="Tokens", unit=MetricUnit.Count, value=tokens)
            self.metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=seconds * 1000)
