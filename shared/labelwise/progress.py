"""A progress bar with an ETA for long CLI work (``evaluate``, ``classify-file``, ``build-model``).

Dependency-free. It draws on its stream (stderr by default) only when that stream is a terminal:
piped or redirected output, CI logs and tests see nothing. ::

    with Progress(total=12, desc="few-shot") as bar:
        for step in steps:
            run(step)
            bar.advance()

Lines another part of the program prints while a bar is shown go through :meth:`Progress.lines`
(a text stream that clears the bar, writes, and redraws it), so they never mix with the bar.
"""

from __future__ import annotations

import io
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

BAR_WIDTH = 24
#: Seconds between two redraws (a final draw always happens).
MIN_INTERVAL_S = 0.1
_CLEAR = "\r\x1b[K"


def format_duration(seconds: float) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_amount(value: float, unit: str) -> str:
    """A count, or a byte size (``unit="B"``: ``1.5 MB``)."""
    if unit != "B":
        return f"{value:g}" if value != int(value) else str(int(value))
    for name, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:.1f} {name}"
    return f"{int(value)} B"


def eta_seconds(done: float, total: float, elapsed: float) -> float | None:
    """Time left at the average rate so far (0 when done); None before any progress."""
    if done >= total:
        return 0.0
    if done <= 0 or elapsed <= 0:
        return None
    return max(0.0, elapsed / done * (total - done))


class Progress:
    """``done`` of ``total`` units of work, drawn as one line with elapsed time and ETA."""

    def __init__(
        self,
        total: float,
        desc: str = "",
        *,
        unit: str = "",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_interval: float = MIN_INTERVAL_S,
    ) -> None:
        self.total = max(float(total), 0.0)
        self.desc = desc
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = _is_tty(self.stream)
        self.clock = clock
        self.min_interval = min_interval
        self.done = 0.0
        self.started = clock()
        self._last_draw: float | None = None
        self._shown = False

    # -- updates -----------------------------------------------------------------------------------
    def advance(self, n: float = 1) -> None:
        self.update(self.done + n)

    def update(self, done: float, desc: str | None = None) -> None:
        """Set the work done (clamped to ``total``), and optionally the description; redraw."""
        self.done = min(max(done, 0.0), self.total) if self.total else max(done, 0.0)
        if desc is not None:
            self.desc = desc
        self._draw(force=desc is not None or self.done >= self.total)

    def render(self) -> str:
        """The line as drawn now (without the carriage return)."""
        elapsed = self.clock() - self.started
        fraction = self.done / self.total if self.total else 1.0
        filled = round(BAR_WIDTH * fraction)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        unit = f" {self.unit}" if self.unit and self.unit != "B" else ""
        amount = f"{format_amount(self.done, self.unit)}/{format_amount(self.total, self.unit)}{unit}"
        eta = eta_seconds(self.done, self.total, elapsed)
        eta_text = format_duration(eta) if eta is not None else "?"
        head = f"{self.desc} " if self.desc else ""
        return f"{head}[{bar}] {fraction:4.0%} {amount}  elapsed {format_duration(elapsed)}  ETA {eta_text}"

    # -- drawing -----------------------------------------------------------------------------------
    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if not force and self._last_draw is not None and now - self._last_draw < self.min_interval:
            return
        self._last_draw = now
        self.stream.write(_CLEAR + self.render())
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the bar (it is drawn again at the next update)."""
        if self.enabled and self._shown:
            self.stream.write(_CLEAR)
            self.stream.flush()
            self._shown = False

    def close(self) -> None:
        """Leave the final state on its own line (a terminal only)."""
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.clear()

    def lines(self, target: TextIO) -> io.TextIOBase:
        """A stream writing to ``target`` that keeps the bar out of the way: each write clears the
        bar first, and a finished line redraws it (for ``contextlib.redirect_stdout``)."""
        return _AroundBar(self, target)


class _AroundBar(io.TextIOBase):
    """A text stream for :meth:`Progress.lines`."""

    def __init__(self, bar: Progress, target: TextIO) -> None:
        super().__init__()
        self._bar = bar
        self._target = target

    def write(self, text: str) -> int:
        self._bar.clear()
        n = self._target.write(text)
        self._target.flush()
        if text.endswith("\n"):
            self._bar._draw(force=True)
        return n

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return _is_tty(self._target)


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except (OSError, ValueError):  # a closed or detached stream
        return False
