"""Streaming readers of uploaded files: records, rejected lines, positions, resuming."""

from __future__ import annotations

import io
import json

import pytest

from labelwise.uploads.readers import (
    Header,
    Item,
    Position,
    Record,
    Rejected,
    UnusableUpload,
    format_for,
    raw_lines,
    read_items,
)

MAX = 1024


def items(
    fmt: str, data: bytes, start: Position | None = None, columns: list[str] | None = None
) -> list[Item]:
    stream = io.BytesIO(data)
    start = start or Position()
    stream.seek(start.offset)
    return list(read_items(fmt, stream.read, start, MAX, columns))  # type: ignore[arg-type]


def records(found: list[Item]) -> list[tuple[int, int, object, str]]:
    return [(i.index, i.line, i.id, i.text) for i in found if isinstance(i, Record)]


def rejected(found: list[Item]) -> list[tuple[int, int, str]]:
    return [(i.index, i.line, i.reason) for i in found if isinstance(i, Rejected)]


class OneByteReads:
    """A stream that hands out at most ``n`` bytes per read (chunk boundaries everywhere)."""

    def __init__(self, data: bytes, n: int = 1) -> None:
        self._stream = io.BytesIO(data)
        self._n = n

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(self._n)


# ------------------------------------------------------------------------------------------ formats
@pytest.mark.parametrize(
    ("key", "fmt"),
    [("uploads/a.jsonl", "jsonl"), ("uploads/x/B.CSV", "csv"), ("uploads/notes.txt", "txt")],
)
def test_format_comes_from_the_extension(key: str, fmt: str) -> None:
    assert format_for(key) == fmt


def test_unknown_extension_is_unusable_with_a_clear_message() -> None:
    with pytest.raises(UnusableUpload, match=r"Unknown file format of 'report.xlsx'.*\.jsonl, \.csv, \.txt"):
        format_for("uploads/report.xlsx")


# -------------------------------------------------------------------------------------------- jsonl
def test_jsonl_records_with_ids_and_malformed_lines_reported_with_line_numbers() -> None:
    # Given a JSON Lines file with good lines, a blank line and several kinds of bad lines
    data = (
        b'{"id": "a", "text": "first"}\n'
        b"\n"
        b'{"text": "no id"}\n'
        b"{not json}\n"
        b'["a list"]\n'
        b'{"id": 7, "text": ""}\n'
        b'{"id": 8}\n'
        b'{"id": 9, "text": 42}\n'
        b'{"id": true, "text": "bool id"}\n'
        b'{"id": 10, "text": "last, no newline"}'
    )
    # When it is read
    found = items("jsonl", data)
    # Then good lines are records (index among records, physical line), blank lines are skipped
    assert records(found) == [(0, 1, "a", "first"), (1, 3, None, "no id"), (8, 10, 10, "last, no newline")]
    # And every bad line is rejected with its line number and a reason
    reasons = {line: reason for _, line, reason in rejected(found)}
    assert sorted(reasons) == [4, 5, 6, 7, 8, 9]
    assert reasons[4].startswith("invalid JSON")
    assert reasons[5] == "not a JSON object"
    assert reasons[6] == "empty `text`"
    assert reasons[7] == "missing `text` (a string)"
    assert reasons[8] == "`text` is not a string"
    assert reasons[9] == "`id` is not a string or an integer"


def test_bom_and_crlf_are_handled() -> None:
    # Given a UTF-8 file with a byte order mark and Windows line endings
    data = b'\xef\xbb\xbf{"text": "caf\xc3\xa9"}\r\n{"text": "two"}\r\n'
    # When it is read
    found = items("jsonl", data)
    # Then the BOM is ignored and the CR is not part of the text
    assert records(found) == [(0, 1, None, "café"), (1, 2, None, "two")]
    assert found[-1].end == Position(len(data), 3, 2)


def test_invalid_utf8_line_is_rejected_not_fatal() -> None:
    found = items("txt", b"ok\n\xff\xfe bad\nfine\n")
    assert records(found) == [(0, 1, None, "ok"), (2, 3, None, "fine")]
    assert rejected(found) == [(1, 2, "not valid UTF-8")]


def test_huge_line_is_rejected_and_skipped_in_bounded_memory() -> None:
    # Given a line far longer than the limit between two normal lines, read in small chunks
    huge = b'{"text": "' + b"x" * (50 * MAX) + b'"}\n'
    data = b'{"text": "before"}\n' + huge + b'{"text": "after"}\n'
    # When it is read
    found = list(read_items("jsonl", OneByteReads(data, 700).read, Position(), MAX))
    # Then the long line is one rejection and the lines around it are intact
    assert records(found) == [(0, 1, None, "before"), (2, 3, None, "after")]
    assert rejected(found) == [(1, 2, f"line longer than {MAX} bytes")]
    assert found[1].end.offset == len(b'{"text": "before"}\n') + len(huge)


def test_raw_lines_never_hold_more_than_the_limit() -> None:
    # Given a 1 MB line without a newline at the end of the file
    data = b"short\n" + b"y" * 1_000_000
    # When split with a 1 KiB limit
    lines = list(raw_lines(OneByteReads(data, 4096).read, Position(), MAX))
    # Then the long tail is reported without its content, with exact offsets
    assert [(ln.number, ln.start, ln.end, ln.data) for ln in lines] == [
        (1, 0, 6, b"short\n"),
        (2, 6, len(data), None),
    ]


# -------------------------------------------------------------------------------------------- txt
def test_txt_is_one_record_per_non_blank_line() -> None:
    found = items("txt", b"alpha\n\n  \nbeta\r\ngamma")
    assert records(found) == [(0, 1, None, "alpha"), (1, 4, None, "beta"), (2, 5, None, "gamma")]


# -------------------------------------------------------------------------------------------- csv
def test_csv_quoted_fields_multiline_records_and_malformed_rows() -> None:
    # Given a CSV with a header, quoted commas, escaped quotes, a record spanning lines, a row of the
    # wrong width, an empty text and an unterminated quote at the end
    data = (
        b"id,text,extra\r\n"
        b'1,"hello, world",x\r\n'
        b'2,"she said ""hi""",y\r\n'
        b'3,"line one\r\nline two",z\r\n'
        b"4,too,many,fields\r\n"
        b"5,,w\r\n"
        b",no id,v\r\n"
        b'6,"never closed,q\r\n'
    )
    # When it is read
    found = items("csv", data)
    # Then the header is reported first, and records carry the line they start on
    assert isinstance(found[0], Header) and found[0].columns == ("id", "text", "extra")
    assert records(found) == [
        (0, 2, "1", "hello, world"),
        (1, 3, "2", 'she said "hi"'),
        (2, 4, "3", "line one\r\nline two"),
        (5, 8, None, "no id"),
    ]
    # And malformed rows are rejected with their line numbers
    assert rejected(found) == [
        (3, 6, "4 fields where the header has 3"),
        (4, 7, "empty `text`"),
        (6, 9, "malformed CSV: unexpected end of data"),
    ]


def test_csv_without_text_column_is_unusable() -> None:
    with pytest.raises(UnusableUpload, match="no `text` column"):
        items("csv", b"id,body\n1,hello\n")


def test_csv_with_bom_in_header() -> None:
    found = items("csv", b"\xef\xbb\xbftext\nhello\n")
    assert records(found) == [(0, 2, None, "hello")]


# ------------------------------------------------------------------------------------------ resume
@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        (
            "jsonl",
            b"".join(json.dumps({"id": i, "text": f"t{i}"}).encode() + b"\n" for i in range(20)) + b"{bad\n",
        ),
        ("txt", b"\xef\xbb\xbf" + b"".join(f"line {i}\r\n".encode() for i in range(20))),
        ("csv", b"id,text\n" + b"".join(f'{i},"multi\nline {i}"\n'.encode() for i in range(20)) + b"x,y,z\n"),
    ],
)
def test_resuming_from_any_item_boundary_equals_a_single_pass(fmt: str, data: bytes) -> None:
    # Given the items of a single pass
    whole = items(fmt, data)
    columns = [list(i.columns) for i in whole if isinstance(i, Header)]
    body = [i for i in whole if not isinstance(i, Header)]
    # When reading restarts after each item, from its end position (and the header for CSV)
    for k, item in enumerate(body):
        rest = [
            i
            for i in items(fmt, data, item.end, columns[0] if columns else None)
            if not isinstance(i, Header)
        ]
        # Then the rest is exactly what the single pass read after it
        assert rest == body[k + 1 :]
