"""Streaming readers of uploaded files: ``.jsonl``, ``.csv``, ``.txt``.

Each reader is a generator over a binary ``read(n)`` callable that yields, in file order, either a
:class:`Record` (text to classify) or a :class:`Rejected` (a bad line, with its reason). Both carry
their 0-based ``index`` among the file's records, the 1-based physical ``line`` where they start and
the :class:`Position` just after them, so a reader can be restarted from any item boundary (a
checkpoint) and continue exactly as a single pass would.

Memory is bounded: input is read in chunks and a line longer than ``max_line_bytes`` is rejected and
skipped without being held. Blank lines are skipped silently (they are not records). A UTF-8 byte
order mark at the start of the file is ignored; CRLF and LF line endings are both accepted.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from labelwise.errors import InvalidInput

Format = Literal["jsonl", "csv", "txt"]
ReadFn = Callable[[int], bytes]

#: File extensions (lower case) and the format they select.
EXTENSIONS: dict[str, Format] = {".jsonl": "jsonl", ".csv": "csv", ".txt": "txt"}
CHUNK_BYTES = 64 * 1024
BOM = b"\xef\xbb\xbf"


class UnusableUpload(InvalidInput):
    """The file as a whole cannot be classified (unknown format, no or bad configuration, a CSV
    without a ``text`` column, a classifier the uploader may not use). Reported in ``errors/``."""

    code = "UPLOAD_UNUSABLE"


@dataclass(frozen=True)
class Position:
    """Where reading resumes: byte ``offset``, physical ``line`` (1-based) and record ``index``."""

    offset: int = 0
    line: int = 1
    index: int = 0


@dataclass(frozen=True)
class Record:
    index: int
    line: int
    id: str | int | None
    text: str
    end: Position


@dataclass(frozen=True)
class Rejected:
    index: int
    line: int
    reason: str
    end: Position


@dataclass(frozen=True)
class Header:
    """A CSV header (not a record): its columns are needed to resume past it."""

    columns: tuple[str, ...]
    end: Position


Item = Record | Rejected | Header


def format_for(key: str) -> Format:
    """The format a key's extension selects; :class:`UnusableUpload` for any other extension."""
    name = key.rsplit("/", 1)[-1].lower()
    for extension, fmt in EXTENSIONS.items():
        if name.endswith(extension):
            return fmt
    known = ", ".join(EXTENSIONS)
    raise UnusableUpload(f"Unknown file format of '{name}': use one of {known}.")


# -- physical lines ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawLine:
    number: int  # 1-based physical line number
    start: int  # byte offset of its first byte
    end: int  # byte offset just after its line ending
    data: bytes | None  # content with its line ending; None when longer than the limit


def raw_lines(read: ReadFn, start: Position, max_line_bytes: int) -> Iterator[RawLine]:
    """Physical lines from ``start`` (offset/line), each at most ``max_line_bytes`` long (longer ones
    come back with ``data=None``, skipped in bounded memory). Strips a BOM at offset 0."""
    lines = _LineSplitter(start.offset, start.line, max_line_bytes)
    if start.offset == 0:
        first, chunk, bom = _first_bytes(read)
        lines.buf += first
        lines.offset += bom
    else:
        chunk = read(CHUNK_BYTES)
        lines.buf += chunk
    while True:
        yield from lines.split()
        if not chunk:
            break
        chunk = read(CHUNK_BYTES)
        lines.buf += chunk
    yield from lines.rest()


def _first_bytes(read: ReadFn) -> tuple[bytes, bytes, int]:
    """The first read of a file, extended while it could still be the start of a BOM, without the BOM.
    Returns those bytes, the last chunk read (empty at the end of the file) and the BOM's length."""
    chunk = read(CHUNK_BYTES)
    buf = bytearray(chunk)
    while len(buf) < len(BOM) and chunk and BOM.startswith(bytes(buf)):
        chunk = read(CHUNK_BYTES)
        buf += chunk
    if buf.startswith(BOM):
        return bytes(buf[len(BOM) :]), chunk, len(BOM)
    return bytes(buf), chunk, 0


class _LineSplitter:
    """:func:`raw_lines`'s state: the bytes not split yet (``buf``, from file offset ``offset``), the
    next line's number, and where a too-long line being skipped started."""

    def __init__(self, offset: int, number: int, max_line_bytes: int) -> None:
        self.buf = bytearray()
        self.offset = offset
        self.number = number
        self.max_line_bytes = max_line_bytes
        self.skipping_from: int | None = None

    def split(self) -> Iterator[RawLine]:
        """The complete lines in ``buf``; then drops them, and the rest when it is already too long."""
        scan = 0
        while (newline := self.buf.find(b"\n", scan)) >= 0:
            yield self._line(scan, newline + 1)
            self.number += 1
            scan = newline + 1
        del self.buf[:scan]
        self.offset += scan
        if self.skipping_from is None and len(self.buf) > self.max_line_bytes:
            self.skipping_from = self.offset
        if self.skipping_from is not None:
            self.offset += len(self.buf)
            self.buf.clear()

    def _line(self, scan: int, stop: int) -> RawLine:
        end = self.offset + stop
        if self.skipping_from is not None:
            started, self.skipping_from = self.skipping_from, None
            return RawLine(self.number, started, end, None)
        if stop - scan > self.max_line_bytes:
            return RawLine(self.number, self.offset + scan, end, None)
        return RawLine(self.number, self.offset + scan, end, bytes(self.buf[scan:stop]))

    def rest(self) -> Iterator[RawLine]:
        """The last line, without a line ending, at the end of the file."""
        if self.skipping_from is not None:
            yield RawLine(self.number, self.skipping_from, self.offset, None)
        elif self.buf:
            yield RawLine(self.number, self.offset, self.offset + len(self.buf), bytes(self.buf))


def _strip_eol(data: bytes) -> bytes:
    if data.endswith(b"\r\n"):
        return data[:-2]
    if data.endswith(b"\n") or data.endswith(b"\r"):
        return data[:-1]
    return data


def _too_long(max_line_bytes: int) -> str:
    return f"line longer than {max_line_bytes} bytes"


def _decode(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


# -- line formats -----------------------------------------------------------------------------------


def read_txt(read: ReadFn, start: Position, max_line_bytes: int) -> Iterator[Item]:
    """One record per non-blank line; the line (without its ending) is the text."""
    index = start.index
    for raw in raw_lines(read, start, max_line_bytes):
        end = Position(raw.end, raw.number + 1, index + 1)
        if raw.data is None:
            yield Rejected(index, raw.number, _too_long(max_line_bytes), end)
        else:
            text = _decode(_strip_eol(raw.data))
            if text is not None and not text.strip():
                continue
            if text is None:
                yield Rejected(index, raw.number, "not valid UTF-8", end)
            else:
                yield Record(index, raw.number, None, text, end)
        index += 1


def _json_record(text: str) -> tuple[str | int | None, str] | str:
    """``(id, text)`` of one JSON Lines object, or the reason it is rejected."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"invalid JSON: {exc.msg} at column {exc.colno}"
    if not isinstance(value, dict):
        return "not a JSON object"
    body = value.get("text")
    if not isinstance(body, str):
        return "missing `text` (a string)" if body is None else "`text` is not a string"
    if not body.strip():
        return "empty `text`"
    ident = value.get("id")
    if ident is not None and (isinstance(ident, bool) or not isinstance(ident, str | int)):
        return "`id` is not a string or an integer"
    return ident, body


def read_jsonl(read: ReadFn, start: Position, max_line_bytes: int) -> Iterator[Item]:
    """One JSON object per non-blank line with ``text`` (string) and optional ``id`` (string or int)."""
    index = start.index
    for raw in raw_lines(read, start, max_line_bytes):
        end = Position(raw.end, raw.number + 1, index + 1)
        if raw.data is None:
            yield Rejected(index, raw.number, _too_long(max_line_bytes), end)
            index += 1
            continue
        text = _decode(_strip_eol(raw.data))
        if text is not None and not text.strip():
            continue
        parsed = "not valid UTF-8" if text is None else _json_record(text)
        if isinstance(parsed, str):
            yield Rejected(index, raw.number, parsed, end)
        else:
            yield Record(index, raw.number, parsed[0], parsed[1], end)
        index += 1


# -- CSV --------------------------------------------------------------------------------------------


class _BadPhysicalLine(Exception):
    def __init__(self, line: RawLine, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class _LineFeed:
    """Feeds decoded physical lines to :mod:`csv` one at a time, remembering where the current
    record started and where the last line pulled ended (csv never reads ahead of a record)."""

    def __init__(self, lines: Iterator[RawLine], max_record_bytes: int) -> None:
        self._lines = lines
        self._max = max_record_bytes
        self.record_bytes = 0
        self.first_line: int | None = None
        self.last: RawLine | None = None

    def start_record(self) -> None:
        self.record_bytes = 0
        self.first_line = None

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        raw = next(self._lines)
        self.last = raw
        if self.first_line is None:
            self.first_line = raw.number
        if raw.data is None:
            raise _BadPhysicalLine(raw, f"record longer than {self._max} bytes")
        self.record_bytes += len(raw.data)
        if self.record_bytes > self._max:
            raise _BadPhysicalLine(raw, f"record longer than {self._max} bytes")
        text = _decode(raw.data)
        if text is None:
            raise _BadPhysicalLine(raw, "not valid UTF-8")
        return text


def parse_header(row: Sequence[str]) -> list[str]:
    """The header's column names; :class:`UnusableUpload` without a ``text`` column."""
    columns = [c.strip() for c in row]
    if "text" not in columns:
        found = ", ".join(repr(c) for c in columns) or "nothing"
        raise UnusableUpload(f"The CSV header has no `text` column (found {found}).")
    return columns


def read_csv(
    read: ReadFn, start: Position, max_line_bytes: int, columns: Sequence[str] | None = None
) -> Iterator[Item]:
    """RFC 4180 CSV (quoted fields may span lines) whose header has a ``text`` column and optionally
    ``id``. ``columns`` is the header when resuming past it (``start.offset > 0``); at offset 0 the
    first record is read as the header (yielded as a :class:`Header`). Rows of another width than
    the header are rejected; an empty ``id`` cell is no id."""
    feed = _LineFeed(raw_lines(read, start, max_line_bytes), max_line_bytes)
    header = list(columns) if columns is not None else None
    index = start.index
    reader = csv.reader(feed, strict=True)
    while True:
        feed.start_record()
        try:
            row = next(reader)
        except StopIteration:
            return
        except (_BadPhysicalLine, csv.Error) as exc:
            last = feed.last
            assert last is not None
            line = feed.first_line or last.number
            reason = exc.reason if isinstance(exc, _BadPhysicalLine) else f"malformed CSV: {exc}"
            reader = csv.reader(feed, strict=True)  # resume at the next physical line
            if header is None:
                raise UnusableUpload(f"The CSV header (line {line}) cannot be read: {reason}.") from exc
            yield Rejected(index, line, reason, Position(last.end, last.number + 1, index + 1))
            index += 1
            continue
        last = feed.last
        assert last is not None and feed.first_line is not None
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if header is None:
            header = parse_header(row)
            yield Header(tuple(header), Position(last.end, last.number + 1, index))
            continue
        end = Position(last.end, last.number + 1, index + 1)
        if len(row) != len(header):
            yield Rejected(
                index, feed.first_line, f"{len(row)} fields where the header has {len(header)}", end
            )
        else:
            values = dict(zip(header, row, strict=True))
            text = values["text"]
            if not text.strip():
                yield Rejected(index, feed.first_line, "empty `text`", end)
            else:
                ident = values.get("id")
                yield Record(index, feed.first_line, ident if ident else None, text, end)
        index += 1


def read_items(
    fmt: Format,
    read: ReadFn,
    start: Position,
    max_line_bytes: int,
    columns: Sequence[str] | None = None,
) -> Iterator[Item]:
    """The items of a file of format ``fmt`` from ``start``."""
    if fmt == "jsonl":
        return read_jsonl(read, start, max_line_bytes)
    if fmt == "txt":
        return read_txt(read, start, max_line_bytes)
    return read_csv(read, start, max_line_bytes, columns)
