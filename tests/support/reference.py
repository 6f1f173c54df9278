"""The reference APIs labelwise conforms to: Jina's classifier OpenAPI (copied under tests/contract)
and Cohere's documented embed model names."""

from __future__ import annotations

import contextlib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

JINA_SPEC = Path(__file__).resolve().parents[1] / "contract" / "jina-classifier-openapi-2026.04.json"

#: Cohere's documented embed model names (v2, v3 and v4), as Cohere's classify accepted them.
COHERE_EMBED_MODELS = (
    "embed-english-v2.0",
    "embed-english-light-v2.0",
    "embed-multilingual-v2.0",
    "embed-english-v3.0",
    "embed-english-light-v3.0",
    "embed-multilingual-v3.0",
    "embed-multilingual-light-v3.0",
    "embed-v4.0",
)


@cache
def jina_spec() -> dict[str, Any]:
    """Jina's classifier OpenAPI (schemas only)."""
    spec: dict[str, Any] = json.loads(JINA_SPEC.read_text(encoding="utf-8"))
    return spec


def jina_model_names() -> list[str]:
    """Every model name in the Jina reference's request discriminators (classify and train)."""
    names: set[str] = set()
    for path in ("/v1/classify", "/v1/train"):
        schema = jina_spec()["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        for option in schema["anyOf"]:
            names.update(option.get("discriminator", {}).get("mapping", {}))
    return sorted(names)


#: Where the reference is registered for ``$ref`` resolution.
JINA_URI = "urn:jina-classifier-openapi"


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _reference_path(path: str) -> str | None:
    """The reference's path template that ``path`` (a request's path) matches, if any."""
    for template in jina_spec()["paths"]:
        pattern = re.sub(r"\{[^/]+\}", "[^/]+", template)  # the templates hold no other specials
        if re.fullmatch(pattern, path):
            return template
    return None


def jina_response_schema(method: str, path: str, status: int) -> str | None:
    """Pointer (in :data:`JINA_URI`) to the reference's schema for this answer, or None where the
    reference has none: a success of a route it does not define (``/v1/embeddings``, ``/health``,
    ``GET /v1/classifiers/{id}``). Errors of every ``/v1`` route use its ``ErrorResponse`` (422 its
    ``HTTPValidationError``), as the reference documents them without a schema of their own."""
    template = _reference_path(path)
    operation = jina_spec()["paths"].get(template or "", {}).get(method.lower())
    if status < 400:
        if operation is None:
            return None
        content = operation["responses"].get(str(status), {}).get("content", {}).get("application/json")
        if content is None:
            return None
        return "#/" + _pointer("paths", str(template), method.lower(), "responses", str(status), "content",
                               "application/json", "schema")  # fmt: skip
    if not path.startswith("/v1/"):
        return None
    return "#/components/schemas/" + ("HTTPValidationError" if status == 422 else "ErrorResponse")


def is_cohere_shaped(body: Any) -> bool:
    """A Cohere-shaped classify answer or error: checked by Cohere's SDK parsing it, not here."""
    return isinstance(body, dict) and ("classifications" in body or set(body) == {"message"})


def _is_label_set(prediction: Any) -> bool:
    """A multi-label row's ``prediction``: a list of labels, or a dict of them per group."""
    if isinstance(prediction, dict):
        return bool(prediction) and all(_is_label_set(p) for p in prediction.values())
    return isinstance(prediction, list) and all(isinstance(label, str) for label in prediction)


def _best_labels(predictions: Any) -> Any:
    """The best label of a row's ``predictions`` (best first), or per group."""
    if isinstance(predictions, dict):
        return {name: _best_labels(group) for name, group in predictions.items()}
    return predictions[0]["label"]


def single_label_view(body: Any) -> Any:
    """``body`` with each multi-label row's ``prediction`` (labelwise's extension, answered only to
    requests outside the reference: ``multi_label: true`` or a classifier created with it) replaced
    by its best label, the reference's shape, so the rest of the answer is still checked. Anything
    else, or a row whose ``predictions`` give no best label, is left as it is."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        return body
    rows = []
    for row in body["data"]:
        if isinstance(row, dict) and _is_label_set(row.get("prediction")):
            with contextlib.suppress(LookupError, TypeError):
                row = {**row, "prediction": _best_labels(row.get("predictions"))}
        rows.append(row)
    return {**body, "data": rows}


def jina_contract_errors(method: str, path: str, status: int, body: Any) -> list[str]:
    """What is wrong with this answer against the Jina reference's response schemas (empty: valid,
    or nothing to check it against). A multi-label classification is checked in its
    :func:`single_label_view`."""
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    pointer = jina_response_schema(method, path, status)
    if pointer is None or is_cohere_shaped(body):
        return []
    if (method, path, status) == ("POST", "/v1/classify", 200):
        body = single_label_view(body)
    registry: Registry[Any] = Registry().with_resource(JINA_URI, Resource.opaque(jina_spec()))
    validator = Draft202012Validator(
        {"$ref": JINA_URI + pointer},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    return [
        f"{method} {path} {status}: {'/'.join(map(str, e.absolute_path)) or '<body>'}: {e.message}"
        for e in validator.iter_errors(body)
    ]
