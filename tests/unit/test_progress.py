"""The progress bar: drawn with an ETA on a terminal, silent otherwise."""

from __future__ import annotations

import contextlib

from labelwise.progress import Progress, eta_seconds, format_amount, format_duration
from tests.support.fakes import FakeStream


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_gets_the_bar_with_elapsed_time_and_eta() -> None:
    # Given a bar of 4 steps on a terminal, with a clock we move
    stream, clock = FakeStream(tty=True), FakeClock()
    with Progress(4, "work", stream=stream, clock=clock, min_interval=0) as bar:
        # When one step takes 10 s
        clock.now += 10
        bar.advance()
        # Then the line shows a quarter done, 10 s elapsed and 30 s left
        assert bar.render() == "work [######..................]  25% 1/4  elapsed 0:10  ETA 0:30"
        assert stream.getvalue().endswith("\r\x1b[K" + bar.render())
        clock.now += 30
        bar.advance(3)
    # And closing leaves the finished bar on its own line
    assert stream.getvalue().endswith("100% 4/4  elapsed 0:40  ETA 0:00\n")


def test_not_a_terminal_gets_nothing() -> None:
    # Given a bar on a stream that is not a terminal (a pipe, a log file, CI)
    stream = FakeStream(tty=False)
    # When work progresses and ends
    with Progress(3, "work", stream=stream) as bar:
        bar.advance()
        bar.update(3, desc="done")
        bar.clear()
    # Then nothing at all is written
    assert stream.getvalue() == ""
    assert not bar.enabled


def test_a_stream_without_isatty_counts_as_no_terminal() -> None:
    # Given an object with write() only
    class Bare:
        def __init__(self) -> None:
            self.text = ""

        def write(self, s: str) -> int:
            self.text += s
            return len(s)

        def flush(self) -> None:
            pass

    bare = Bare()
    # When a bar runs on it
    with Progress(2, stream=bare) as bar:  # type: ignore[arg-type]
        bar.advance(2)
    # Then it stays quiet
    assert bare.text == ""


def test_redraws_are_throttled_but_the_end_is_always_drawn() -> None:
    # Given a bar that redraws at most every second, and a clock that does not move
    stream, clock = FakeStream(tty=True), FakeClock()
    bar = Progress(100, stream=stream, clock=clock, min_interval=1.0)
    bar.update(1)
    drawn = stream.getvalue()
    # When many small updates come within the second
    for i in range(2, 99):
        bar.update(i)
    # Then none is drawn, but the last one is
    assert stream.getvalue() == drawn
    bar.update(100)
    assert stream.getvalue().endswith("100/100  elapsed 0:00  ETA 0:00")


def test_lines_printed_meanwhile_go_above_the_bar() -> None:
    # Given a bar on a terminal and a program printing lines to stdout while it runs
    err, out = FakeStream(tty=True), FakeStream(tty=True)
    with Progress(2, "build", stream=err, min_interval=0) as bar:
        # When a line is printed through bar.lines()
        with contextlib.redirect_stdout(bar.lines(out)):
            print("[modelbuild] a: built")
        # Then the bar was erased before the line and redrawn after it
        assert out.getvalue() == "[modelbuild] a: built\n"
        assert err.getvalue().endswith("\r\x1b[K\r\x1b[K" + bar.render())


def test_byte_amounts_durations_and_eta() -> None:
    # Given / When / Then: the helpers the line is made of
    assert format_amount(1_500_000, "B") == "1.5 MB"
    assert format_amount(512, "B") == "512 B"
    assert format_amount(3, "") == "3"
    assert format_duration(75) == "1:15"
    assert format_duration(3725) == "1:02:05"
    assert eta_seconds(0, 10, 5.0) is None
    assert eta_seconds(5, 10, 5.0) == 5.0
    # And a byte bar shows sizes without a unit suffix
    bar = Progress(2_000_000, unit="B", stream=FakeStream(tty=True))
    bar.done = 1_000_000
    assert "1.0 MB/2.0 MB  elapsed" in bar.render()
