"""The /v1/classify route over a fake embedder: response shape, scores and every bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labelwise.api.app import create_app
from labelwise.embedding.registry import ModelRegistry
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def services(settings: Settings, embedder: HashingEmbedder) -> Services:
    return Services(settings=settings, registry=ModelRegistry.from_embedders([embedder]))


@pytest.fixture
def api_key(services: Services) -> str:
    key, _ = services.keys.create("tenant-a", "test")
    return key


@pytest.fixture
def call(services: Services, api_event: Any, lambda_context: Any, api_key: str):
    app = create_app(services, scope="classify")

    def invoke(
        body: Any = None,
        raw: bytes | None = None,
        method: str = "POST",
        path: str = "/v1/classify",
        key: str | None = "default",
        authorization: str | None = None,
    ):
        headers = {"authorization": f"Bearer {api_key if key == 'default' else key}"} if key else {}
        if authorization is not None:
            headers = {"authorization": authorization}
        response = app.resolve(api_event(method, path, body, raw=raw, headers=headers), lambda_context)
        return response["statusCode"], json.loads(response["body"]), response["headers"]

    return invoke


def test_zero_shot_scores_are_a_distribution_and_best_first(call: Any) -> None:
    # Given labels and inputs that share words with one label each
    body = {
        "labels": ["billing refund", "shipping delay"],
        "input": ["refund my billing", "shipping delay again"],
    }
    # When classifying
    status, out, headers = call(body)
    # Then every input gets the matching label, scores sum to 1 and are sorted
    assert status == 200
    assert [d["prediction"] for d in out["data"]] == ["billing refund", "shipping delay"]
    for i, row in enumerate(out["data"]):
        assert row["object"] == "classification" and row["index"] == i
        scores = [p["score"] for p in row["predictions"]]
        assert sum(scores) == pytest.approx(1.0, abs=1e-5)
        assert scores == sorted(scores, reverse=True)
        assert row["score"] == scores[0]
    assert out["model"] == "fake-model"
    assert out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] > 0
    assert headers["x-request-id"] == "req-123"


def test_single_string_and_text_objects_are_accepted(call: Any) -> None:
    # Given the three input forms
    for given in ("refund please", ["refund please"], [{"text": "refund please"}]):
        # When classifying
        status, out, _ = call({"labels": ["refund", "other"], "input": given})
        # Then each yields one classification
        assert status == 200, out
        assert len(out["data"]) == 1 and out["data"][0]["prediction"] == "refund"


def test_label_groups_are_scored_independently(call: Any) -> None:
    # Given two named label groups
    body = {
        "labels": {"topic": ["refund", "shipping"], "tone": ["angry", "happy"]},
        "input": ["angry about refund"],
    }
    # When classifying
    status, out, _ = call(body)
    # Then prediction, score and predictions are objects keyed by group, each a distribution
    assert status == 200
    row = out["data"][0]
    assert row["prediction"] == {"topic": "refund", "tone": "angry"}
    assert set(row["score"]) == {"topic", "tone"}
    for group in ("topic", "tone"):
        assert sum(p["score"] for p in row["predictions"][group]) == pytest.approx(1.0, abs=1e-5)


def test_label_embeddings_are_cached_across_requests(call: Any, embedder: HashingEmbedder) -> None:
    # Given a first request that embedded the labels
    call({"labels": ["alpha", "beta"], "input": ["alpha"]})
    embedder.calls.clear()
    # When the same labels come again
    status, _, _ = call({"labels": ["beta", "alpha"], "input": ["beta gamma"]})
    # Then only the input is embedded
    assert status == 200
    assert embedder.calls == [(("beta gamma",), "input")]


def test_usage_counts_inputs_and_labels(call: Any) -> None:
    # Given 2 one-word inputs and 2 one-word labels (fake: words + 2 tokens each)
    status, out, _ = call({"labels": ["a", "b"], "input": ["x", "y"]})
    # Then usage is 4 texts x 3 tokens
    assert status == 200 and out["usage"]["total_tokens"] == 12


def test_long_input_is_truncated_and_said_so(call: Any) -> None:
    status, out, _ = call({"labels": ["a", "b"], "input": ["word " * 100, "short"]})
    assert status == 200
    assert [d["truncated"] for d in out["data"]] == [True, False]


def test_model_aliases_resolve_and_unknown_model_is_400(call: Any) -> None:
    # Given an alias glob of the fake model
    status, out, _ = call({"model": "fake-v9", "labels": ["a", "b"], "input": "a"})
    assert status == 200 and out["model"] == "fake-model"
    # When the model is unknown
    status, out, _ = call({"model": "gpt-9", "labels": ["a", "b"], "input": "a"})
    # Then 400 INPUT_MODEL_NOT_FOUND lists the available models
    assert status == 400
    assert out["code"] == "INPUT_MODEL_NOT_FOUND" and "fake-model" in out["detail"]
    assert out["request_id"] == "req-123"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"labels": [], "input": "x"}, 400, "INPUT_INVALID_LABELS"),
        ({"labels": ["a", "a"], "input": "x"}, 400, "INPUT_INVALID_LABELS"),
        ({"labels": ["a", " "], "input": "x"}, 400, "INPUT_INVALID_LABELS"),
        ({"labels": ["a", "b" * 300], "input": "x"}, 400, "INPUT_INVALID_LABELS"),
        ({"labels": [f"l{i}" for i in range(513)], "input": "x"}, 400, "INPUT_LABEL_LIMIT_EXCEEDED"),
        ({"labels": {"g": [f"l{i}" for i in range(65)]}, "input": "x"}, 400, "INPUT_LABEL_LIMIT_EXCEEDED"),
        (
            {"labels": {f"g{i}": ["a", "b"] for i in range(9)}, "input": "x"},
            400,
            "INPUT_LABEL_LIMIT_EXCEEDED",
        ),
        ({"labels": {}, "input": "x"}, 400, "INPUT_INVALID_LABELS"),
        ({"labels": {"g": []}, "input": "x"}, 400, "INPUT_INVALID_LABELS"),
        ({"labels": ["a", "b"], "input": []}, 400, "INPUT_INVALID"),
        ({"labels": ["a", "b"], "input": ["x"] * 1025}, 400, "INPUT_LIMIT_EXCEEDED"),
        ({"labels": ["a", "b"], "input": ["ok", "  "]}, 400, "INPUT_INVALID"),
        (
            {"labels": ["a", "b"], "input": [{"image": "https://example.com/cat.png"}]},
            400,
            "INPUT_UNSUPPORTED",
        ),
        ({"input": "x"}, 400, "INPUT_INVALID"),
        ({"labels": ["a", "b"], "classifier_id": "c1", "input": "x"}, 400, "INPUT_INVALID"),
        ({"labels": "a", "input": "x"}, 422, "INPUT_VALIDATION_ERROR"),
        ({"labels": ["a", 3], "input": "x"}, 422, "INPUT_VALIDATION_ERROR"),
        ({"labels": ["a", "b"]}, 422, "INPUT_VALIDATION_ERROR"),
        ({"labels": ["a", "b"], "input": [{"txt": "x"}]}, 422, "INPUT_VALIDATION_ERROR"),
        ([1, 2, 3], 422, "INPUT_VALIDATION_ERROR"),
    ],
)
def test_bad_input_gets_a_clear_4xx_in_the_envelope(call: Any, body: Any, status: int, code: str) -> None:
    # When a bad request arrives
    got_status, out, _ = call(body)
    # Then it is answered with the documented envelope, never a 500
    assert (got_status, out["code"]) == (status, code), out
    assert out["detail"] and out["request_id"] == "req-123"
    if status == 422:
        assert out["errors"] and {"field", "message", "type"} <= set(out["errors"][0])


def test_body_that_is_not_json_is_400(call: Any) -> None:
    status, out, _ = call(raw=b"{not json")
    assert status == 400 and out["code"] == "INPUT_MALFORMED_JSON"


def test_body_over_the_limit_is_413(call: Any, settings: Settings) -> None:
    # Given a body one byte over the limit
    text = "x" * settings.max_body_bytes
    status, out, _ = call({"labels": ["a", "b"], "input": text})
    assert status == 413 and out["code"] == "INPUT_PAYLOAD_TOO_LARGE"


def test_unknown_route_is_404_in_the_envelope(call: Any) -> None:
    status, out, _ = call(None, method="GET", path="/v2/nothing")
    assert status == 404 and out["code"] == "ROUTE_NOT_FOUND"


def test_embedder_failure_is_503_not_500(call: Any, embedder: HashingEmbedder, monkeypatch: Any) -> None:
    # Given an embedder whose runtime fails
    from labelwise.errors import EmbedderUnavailable

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise EmbedderUnavailable("onnxruntime failed")

    monkeypatch.setattr(embedder, "embed", broken)
    # When classifying
    status, out, _ = call({"labels": ["zzz-new", "yyy-new"], "input": "x"})
    # Then the client is told to retry
    assert status == 503 and out["code"] == "SERVICE_UNAVAILABLE"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "AUTH_MISSING_API_KEY"),
        ("Bearer lw_not-a-real-key", "AUTH_INVALID_API_KEY"),
        ("Basic abc", "AUTH_INVALID_FORMAT"),
        ("Bearer", "AUTH_INVALID_FORMAT"),
    ],
)
def test_missing_or_bad_key_is_401_even_for_a_malformed_body(
    call: Any, authorization: str | None, code: str
) -> None:
    # Given no key, an unknown key, or the wrong scheme
    for body, raw in (({"labels": ["a", "b"], "input": "x"}, None), (None, b"{oops")):
        # When calling
        status, out, _ = call(body, raw=raw, key=None, authorization=authorization)
        # Then the answer is 401 in the envelope with Jina's code for the case, whatever the body
        assert status == 401 and out["code"] == code, out


def test_revoked_key_is_401(call: Any, services: Services) -> None:
    key, record = services.keys.create("tenant-b", "soon revoked")
    services.keys.revoke(record.key_id)
    status, out, _ = call({"labels": ["a", "b"], "input": "x"}, key=key)
    assert status == 401 and out["code"] == "AUTH_INVALID_API_KEY"


def test_fields_neither_api_defines_are_ignored(call: Any) -> None:
    # Given a request carrying fields of some client's own, at the top and in a document
    body = {"labels": ["a", "b"], "input": [{"text": "x", "id": "doc-1"}], "unknown": 1, "task": "x"}
    # When classifying
    status, out, _ = call(body)
    # Then it is answered as if they were absent
    assert status == 200, out
    assert out == call({"labels": ["a", "b"], "input": [{"text": "x"}]})[1] | {"usage": out["usage"]}


def test_jina_limits_512_labels_or_8_groups_of_64_are_accepted(call: Any) -> None:
    # Given the largest label sets Jina's reference allows
    for labels in ([f"l{i}" for i in range(512)], {f"g{j}": [f"l{i}" for i in range(64)] for j in range(8)}):
        # When classifying one input
        status, out, _ = call({"labels": labels, "input": "x"})
        # Then it is answered
        assert status == 200, out


def test_a_wrong_method_is_405_with_allow_in_the_lambda_path(call: Any) -> None:
    # Given the Lambda resolver (no local server in front)
    # When /v1/classify is called with PATCH
    status, out, headers = call({"input": ["a"], "labels": ["a"]}, method="PATCH")
    # Then it is a 405 naming POST, in the error envelope
    assert status == 405 and headers["Allow"] == "POST"
    assert out["code"] == "METHOD_NOT_ALLOWED" and out["request_id"]
