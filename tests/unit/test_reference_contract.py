"""The contract checker the e2e suite runs on every answer (tests/support/reference.py) finds what
breaks Jina's reference response schemas, and checks each answer against the right one."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.reference import jina_contract_errors, jina_response_schema

CLASSIFICATION = {
    "usage": {"total_tokens": 5},
    "data": [{"index": 0, "prediction": "a", "score": 0.6, "predictions": [{"label": "a", "score": 0.6}]}],
}
SUMMARY = {
    "classifier_id": "6b1f3e0c-6c55-4d3e-9a8e-0a4f3c2b1d7e",
    "user_id": "0b1f3e0c-6c55-4d3e-9a8e-0a4f3c2b1d7e",
    "model": "m",
    "labels": ["a"],
    "access": "private",
    "created_at": "2026-12-01T10:00:00+00:00",
    "updated_at": "2026-12-01T10:00:00+00:00",
    "updated_number": 1,
    "used_number": 0,
    "used_at": None,
    "metadata_": {},
}


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("POST", "/v1/classify", 200, CLASSIFICATION),
        ("POST", "/v1/train", 200, {"classifier_id": "c", "num_samples": 2, "usage": {"total_tokens": 1}}),
        ("GET", "/v1/classifiers", 200, [SUMMARY]),
        ("POST", "/v1/classifiers", 200, []),
        ("POST", "/v1/embeddings", 413, {"code": "X", "detail": "too big", "request_id": "r"}),
        ("POST", "/v1/classify", 200, {"id": "x", "classifications": [], "meta": {}}),  # Cohere's shape
        ("POST", "/v1/classify", 401, {"message": "no key"}),  # Cohere's error envelope
        ("POST", "/v1/embeddings", 200, {"object": "list", "data": []}),  # not a Jina classifier route
    ],
)
def test_valid_answers_pass(method: str, path: str, status: int, body: Any) -> None:
    assert jina_contract_errors(method, path, status, body) == []


@pytest.mark.parametrize(
    ("method", "path", "status", "body", "words"),
    [
        ("POST", "/v1/classify", 200, {"data": CLASSIFICATION["data"]}, "'usage' is a required"),
        (
            "POST",
            "/v1/classify",
            200,
            {**CLASSIFICATION, "data": [{"index": 0}]},
            "'prediction' is a required",
        ),
        ("POST", "/v1/train", 200, {"classifier_id": "c"}, "'num_samples' is a required"),
        ("GET", "/v1/classifiers", 200, {"data": [SUMMARY]}, "is not of type 'array'"),
        ("GET", "/v1/classifiers", 200, [{**SUMMARY, "created_at": "yesterday"}], "date-time"),
        ("DELETE", "/v1/classifiers/abc", 200, [], "is not of type 'object'"),
        ("GET", "/v1/classifiers/abc", 404, {"code": "RESOURCE_NOT_FOUND"}, "'detail' is a required"),
        ("POST", "/v1/train", 422, {"detail": "bad", "errors": [{"field": 3}]}, "is not of type 'string'"),
    ],
)
def test_answers_outside_the_reference_are_reported(
    method: str, path: str, status: int, body: Any, words: str
) -> None:
    errors = jina_contract_errors(method, path, status, body)
    assert errors and any(words in e for e in errors), errors


def test_routes_the_reference_does_not_define_have_no_success_schema() -> None:
    for method, path in (("GET", "/health"), ("POST", "/v1/embeddings"), ("GET", "/v1/classifiers/abc")):
        assert jina_response_schema(method, path, 200) is None
        assert jina_response_schema(method, path, 500) == (
            None if path == "/health" else "#/components/schemas/ErrorResponse"
        )


MULTI_LABEL_ROW = {
    "index": 0,
    "prediction": ["a", "b"],
    "score": 0.9,
    "predictions": [{"label": "a", "score": 0.9}, {"label": "b", "score": 0.7}, {"label": "c", "score": 0.1}],
}


def test_a_multi_label_classification_is_checked_with_its_best_label_as_prediction() -> None:
    # Given multi-label rows (labelwise's extension: `prediction` lists the chosen labels, maybe none),
    # as a plain list and per group
    grouped = {
        "index": 1,
        "prediction": {"g": []},
        "score": {"g": 0.2},
        "predictions": {"g": [{"label": "x", "score": 0.2}]},
    }
    answer = {"usage": {"total_tokens": 5}, "data": [MULTI_LABEL_ROW, grouped]}
    # When the checker looks at the answer, and at it without its usage, and with a label set of numbers
    valid = jina_contract_errors("POST", "/v1/classify", 200, answer)
    no_usage = jina_contract_errors("POST", "/v1/classify", 200, {"data": answer["data"]})
    numbers = jina_contract_errors(
        "POST", "/v1/classify", 200, {**answer, "data": [{**MULTI_LABEL_ROW, "prediction": [1, 2]}]}
    )
    # Then the valid answer passes, and the rest of a multi-label answer is still checked
    assert valid == []
    assert any("'usage' is a required" in e for e in no_usage), no_usage
    assert any("data/0/prediction" in e for e in numbers), numbers
