"""Per-key quotas: requests and embedded tokens per minute (fixed one-minute windows).

A request is admitted when its key has requests *and* tokens left in the current minute; admission
consumes one request. After the request, the tokens it embedded are charged, whatever its outcome
(a request failing after some embedding pays for it; images count 1 token each). The figure is
only known then, so one large request may overshoot (at most ``max_request_tokens``); the next one
is refused. Answers past a limit are
429 with Jina's ``X-RateLimit-Remaining-Requests`` / ``X-RateLimit-Remaining-Tokens`` headers.
In AWS the counters live in DynamoDB (shared by every Lambda instance); locally in memory. API
Gateway's throttling settings in ``template.yaml`` are the outer guard. The tokens a request
embedded are metered by :mod:`labelwise.request_context`.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from labelwise.errors import RateLimited, TokenRateLimited

WINDOW_SECONDS = 60


@dataclass(frozen=True)
class QuotaState:
    """What a key has left in the current window (``-1``: unlimited)."""

    remaining_requests: int
    remaining_tokens: int
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        out = {"X-RateLimit-Reset": str(self.reset_seconds)}
        if self.remaining_requests >= 0:
            out["X-RateLimit-Remaining-Requests"] = str(self.remaining_requests)
        if self.remaining_tokens >= 0:
            out["X-RateLimit-Remaining-Tokens"] = str(self.remaining_tokens)
        return out


class QuotaExceeded(RateLimited):
    """429 for requests per minute, carrying the headers the answer must have."""

    def __init__(self, detail: str, state: QuotaState) -> None:
        super().__init__(detail)
        self.state = state

    @classmethod
    def of(cls, state: QuotaState, reset: int) -> QuotaExceeded:
        """The error for ``state``: :class:`TokenQuotaExceeded` when only tokens ran out."""
        tokens = state.remaining_requests != 0
        what = "tokens" if tokens else "requests"
        kind = TokenQuotaExceeded if tokens else QuotaExceeded
        return kind(
            f"Rate limit exceeded: this key has no {what} left this minute; retry in {reset} s.", state
        )

    @property
    def headers(self) -> dict[str, str]:
        return {**self.state.headers(), "Retry-After": str(max(self.state.reset_seconds, 1))}


class TokenQuotaExceeded(QuotaExceeded, TokenRateLimited):
    """429 for tokens per minute (``RATE_TOKEN_LIMIT_EXCEEDED``)."""

    code = TokenRateLimited.code


class RateLimiter(ABC):
    def __init__(
        self, requests_per_minute: int, tokens_per_minute: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.requests_per_minute = requests_per_minute
        self.tokens_per_minute = tokens_per_minute
        self._clock = clock

    def _window(self) -> tuple[int, int]:
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        return window, int((window + 1) * WINDOW_SECONDS - now)

    def _state(self, requests: int, tokens: int, reset: int) -> QuotaState:
        return QuotaState(
            remaining_requests=max(self.requests_per_minute - requests, 0)
            if self.requests_per_minute
            else -1,
            remaining_tokens=max(self.tokens_per_minute - tokens, 0) if self.tokens_per_minute else -1,
            reset_seconds=reset,
        )

    def admit(self, key_id: str) -> QuotaState:
        """Consume one request of ``key_id``'s quota, or raise :class:`QuotaExceeded` (429)."""
        window, reset = self._window()
        requests, tokens, admitted = self._try_admit(key_id, window)
        state = self._state(requests, tokens, reset)
        if not admitted:
            raise QuotaExceeded.of(state, reset)
        return state

    def charge(self, key_id: str, tokens: int) -> QuotaState:
        """Add the tokens a finished request embedded; the state after it."""
        window, reset = self._window()
        requests, used = self._add_tokens(key_id, window, tokens)
        return self._state(requests, used, reset)

    @abstractmethod
    def _try_admit(self, key_id: str, window: int) -> tuple[int, int, bool]:
        """Atomically: if under both limits, requests += 1. Returns (requests, tokens, admitted)."""

    @abstractmethod
    def _add_tokens(self, key_id: str, window: int, tokens: int) -> tuple[int, int]:
        """Atomically tokens += n. Returns (requests, tokens)."""


class MemoryRateLimiter(RateLimiter):
    """Counters in this process (the local server is one process)."""

    def __init__(
        self, requests_per_minute: int, tokens_per_minute: int, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(requests_per_minute, tokens_per_minute, clock)
        self._counts: dict[tuple[str, int], list[int]] = {}
        self._lock = threading.Lock()

    def _slot(self, key_id: str, window: int) -> list[int]:
        for stale in [k for k in self._counts if k[1] < window]:
            del self._counts[stale]
        return self._counts.setdefault((key_id, window), [0, 0])

    def _try_admit(self, key_id: str, window: int) -> tuple[int, int, bool]:
        with self._lock:
            slot = self._slot(key_id, window)
            over_requests = bool(self.requests_per_minute) and slot[0] >= self.requests_per_minute
            over_tokens = bool(self.tokens_per_minute) and slot[1] >= self.tokens_per_minute
            if over_requests or over_tokens:
                return slot[0], slot[1], False
            slot[0] += 1
            return slot[0], slot[1], True

    def _add_tokens(self, key_id: str, window: int, tokens: int) -> tuple[int, int]:
        with self._lock:
            slot = self._slot(key_id, window)
            slot[1] += tokens
            return slot[0], slot[1]


class UnlimitedRateLimiter(RateLimiter):
    def __init__(self) -> None:
        super().__init__(0, 0)

    def _try_admit(self, key_id: str, window: int) -> tuple[int, int, bool]:
        return 0, 0, True

    def _add_tokens(self, key_id: str, window: int, tokens: int) -> tuple[int, int]:
        return 0, 0
