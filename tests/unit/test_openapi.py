"""The committed OpenAPI document (fuzzed by tests/fuzz and `make fuzz`) is the one the code generates."""

from __future__ import annotations

import json
from pathlib import Path

from labelwise.api.openapi import generate

REPO = Path(__file__).resolve().parents[2]


def test_committed_openapi_document_is_current() -> None:
    # Given the document generated from the request/response models
    generated = generate()
    # Then docs/openapi.json is exactly it (regenerate with `make openapi`)
    committed = (REPO / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert committed == generated, "docs/openapi.json is stale: run `make openapi`"


def test_cohere_shaped_classify_errors_are_documented() -> None:
    # Given the generated document
    document = json.loads(generate())
    # Then /v1/classify's error answers allow Cohere's envelope as well as Jina's
    responses = document["paths"]["/v1/classify"]["post"]["responses"]
    for status in ("400", "401", "404", "422", "429", "503"):
        schema = responses[status]["content"]["application/json"]["schema"]
        refs = {option.get("$ref") for option in schema.get("anyOf", [])}
        assert refs == {"#/components/schemas/ErrorResponse", "#/components/schemas/CohereError"}, status


def test_every_route_documents_every_status_it_can_emit() -> None:
    from labelwise.http_status import STATUS_BY_ERROR

    # Given every status a domain error maps to, schema violations (422) and unexpected errors (500),
    # less 405 (a method no operation serves), and 408 and 501: the local server's own answers to a
    # client that stops sending and to transfer codings, which API Gateway answers itself when deployed
    emitted = {str(s) for s in STATUS_BY_ERROR.values()} | {"422", "500"}
    emitted -= {"405", "408", "501"}
    assert {"403", "500", "504"} <= emitted
    # When the generated document is read
    paths = json.loads(generate())["paths"]
    # Then every API operation documents each of them, /v1/embeddings included, and /health the
    # failures it can meet (a body over the limit, an unexpected error)
    assert "/v1/embeddings" in paths
    for path, operations in paths.items():
        for method, operation in operations.items():
            expected = {"413", "500"} if path == "/health" else emitted
            missing = expected - set(operation["responses"])
            assert not missing, (method, path, sorted(missing))
