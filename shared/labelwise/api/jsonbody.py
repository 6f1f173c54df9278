"""The request-body JSON parser: ``json.loads`` plus the two things it accepts that nothing else can use.

* An integer of more than ``sys.get_int_max_str_digits()`` (4,300) digits makes ``json.loads`` raise a
  plain ``ValueError`` (CPython's guard against quadratic int conversion, CVE-2020-10735), which is
  not a ``JSONDecodeError`` and so escaped as a 500.
* A lone surrogate escape (``"\\ud800"``) is valid JSON but not Unicode: the string cannot be encoded
  as UTF-8, so the tokenizer, the hashing of cache keys and the response serializer all fail on it.

Both are re-raised as :class:`json.JSONDecodeError`, which Powertools' validation turns into a
``json_invalid`` error, answered 400 ``INPUT_MALFORMED_JSON`` by :mod:`labelwise.api.errors`.
"""

from __future__ import annotations

import json
from typing import Any


def _first_lone_surrogate(value: Any) -> str | None:
    """The JSON path of the first string (key or value) holding a lone surrogate, else None."""
    stack: list[tuple[str, Any]] = [("$", value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, str):
            if not node.isascii():
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError:
                    return path
        elif isinstance(node, dict):
            for key, item in node.items():
                if not key.isascii():
                    try:
                        key.encode("utf-8")
                    except UnicodeEncodeError:
                        return f"{path} (a key)"
                stack.append((f"{path}.{key}", item))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(node))
    return None


def loads(text: str) -> Any:
    """Parse a request body; raise :class:`json.JSONDecodeError` for anything the service cannot use."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # int-conversion limit: "Exceeds the limit (4300 digits) ..."
        raise json.JSONDecodeError(
            "a number has more digits than the 4300 allowed", text if isinstance(text, str) else "", 0
        ) from exc
    where = _first_lone_surrogate(value)
    if where is not None:
        where = where if len(where) <= 120 else where[:117] + "..."
        raise json.JSONDecodeError(
            f"{where} holds a lone surrogate escape (\\ud800-\\udfff); text must be valid Unicode",
            text if isinstance(text, str) else "",
            0,
        )
    return value
