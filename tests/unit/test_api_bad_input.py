"""Bodies Python's JSON parser accepts but the service cannot use: huge integers, lone surrogates.

Each must answer a 4xx in the error envelope on every route, with a key or without, never a 500.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from labelwise.api.app import create_app
from labelwise.embedding.registry import ModelRegistry
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder

HUGE_INT = "9" * 4301  # one digit past CPython's int-conversion limit (sys.int_info.default_max_str_digits)
SURROGATE = "\\ud800"  # a lone high surrogate, as a JSON escape


@pytest.fixture
def services(settings: Settings) -> Services:
    return Services(settings=settings, registry=ModelRegistry.from_embedders([HashingEmbedder()]))


@pytest.fixture
def api_key(services: Services) -> str:
    key, _ = services.keys.create("tenant-a", "test")
    return key


@pytest.fixture
def call(services: Services, api_event: Any, lambda_context: Any, api_key: str):
    app = create_app(services, scope="all")

    def invoke(method: str, path: str, raw: str, with_key: bool = True) -> tuple[int, dict[str, Any]]:
        headers = {"authorization": f"Bearer {api_key}"} if with_key else {}
        event = api_event(method, path, raw=raw.encode("utf-8"), headers=headers)
        response = app.resolve(event, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    return invoke


ROUTES = [
    ("POST", "/v1/classify"),
    ("POST", "/v1/train"),
    ("POST", "/v1/embeddings"),
    ("POST", "/v1/classifiers"),
    ("GET", "/v1/classifiers"),
    ("GET", "/v1/classifiers/abc"),
    ("DELETE", "/v1/classifiers/abc"),
    ("GET", "/health"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("with_key", [True, False])
def test_an_integer_past_the_conversion_limit_is_never_a_5xx(
    call: Any, method: str, path: str, with_key: bool
) -> None:
    # Given a body holding a 4,301-digit JSON integer
    raw = '{"input": ["a"], "labels": ["x"], "num_iters": ' + HUGE_INT + "}"
    # When it is sent to a route, with a key or without
    status, body = call(method, path, raw, with_key)
    # Then the answer is never a 500: a 4xx where the body is read, a 401 without a key, and routes
    # without a body (GET, DELETE, the POST form of the listing) ignore it
    assert status < 500, body
    if status >= 400:
        assert body["code"] and body["request_id"]
    if not with_key and path != "/health":
        assert status == 401
    if with_key and method == "POST" and path != "/v1/classifiers":
        assert status == 400 and body["code"] == "INPUT_MALFORMED_JSON"
        assert "4300" in body["detail"] or "digits" in body["detail"]


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/classify", '{"input": ["a ' + SURROGATE + ' b"], "labels": ["x", "y"]}'),
        ("/v1/classify", '{"input": ["a b"], "labels": ["x' + SURROGATE + '", "y"]}'),
        ("/v1/classify", '{"input": ["a b"], "labels": {"g' + SURROGATE + '": ["x", "y"]}}'),
        ("/v1/classify", '{"input": [{"text": "' + SURROGATE + '"}], "labels": ["x", "y"]}'),
        ("/v1/train", '{"input": [{"text": "t' + SURROGATE + '", "label": "a"}]}'),
        ("/v1/train", '{"input": [{"text": "t", "label": "a\\udfff"}]}'),
        ("/v1/classify", '{"inputs": ["a' + SURROGATE + '"], "examples": []}'),
        (
            "/v1/classify",
            '{"inputs": ["a"], "examples": [{"text": "e' + SURROGATE + '", "label": "l"},'
            ' {"text": "f", "label": "m"}]}',
        ),
        (
            "/v1/classify",
            '{"inputs": ["a"], "examples": [{"text": "e", "label": "l' + SURROGATE + '"},'
            ' {"text": "f", "label": "m"}]}',
        ),
        ("/v1/classify", '{"input": ["a b"], "labels": ["x", "y"], "model": "fake' + SURROGATE + '"}'),
        ("/v1/embeddings", '{"input": ["a' + SURROGATE + '"]}'),
        ("/v1/embeddings", '{"input": "\\udfff' + SURROGATE + '"}'),
    ],
)
def test_a_lone_surrogate_anywhere_in_the_body_is_a_400(call: Any, path: str, raw: str) -> None:
    # Given a body whose input, label, training text or Cohere input holds a lone surrogate escape
    # When it is sent
    status, body = call("POST", path, raw)
    # Then it is refused as malformed (Jina's or Cohere's envelope), not a 500 from the tokenizer
    assert status == 400, body
    detail = body.get("detail") or body.get("message") or ""
    assert "surrogate" in detail


def test_a_surrogate_pair_is_a_valid_character(call: Any) -> None:
    # Given an emoji written as an escaped surrogate pair (valid JSON and valid Unicode)
    raw = '{"input": ["refund \\ud83d\\ude00"], "labels": ["refund", "delay"]}'
    # When classifying
    status, body = call("POST", "/v1/classify", raw)
    # Then it is served
    assert status == 200 and body["data"][0]["prediction"] == "refund"


def test_an_escaped_backslash_before_u_is_not_a_surrogate(call: Any) -> None:
    # Given the literal text "\ud800" (an escaped backslash, then "ud800")
    raw = '{"input": ["refund \\\\ud800"], "labels": ["refund", "delay"]}'
    status, body = call("POST", "/v1/classify", raw)
    # Then it is ordinary text
    assert status == 200, body


POST_ROUTES = [("POST", "/v1/classify"), ("POST", "/v1/train"), ("POST", "/v1/embeddings")]
GOOD_BODY = '{"input": ["refund please"], "labels": ["billing", "shipping"]}'


@pytest.mark.parametrize(("method", "path"), POST_ROUTES)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "8:@)Q", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"],
)
@pytest.mark.parametrize("with_key", [True, False])
def test_a_body_that_is_not_declared_json_is_a_415_in_the_envelope(
    services: Services, api_event: Any, lambda_context: Any, api_key: str, method: str, path: str,
    content_type: str, with_key: bool,
) -> None:  # fmt: skip
    # Given a JSON body sent with a Content-Type other than JSON (curl -d sends form-urlencoded)
    app = create_app(services, scope="all")
    headers = {"content-type": content_type, **({"authorization": f"Bearer {api_key}"} if with_key else {})}
    event = api_event(method, path, raw=GOOD_BODY.encode(), headers=headers)
    # When it is sent
    response = app.resolve(event, lambda_context)
    body = json.loads(response["body"])
    # Then it is refused in the envelope, naming the fix (401 first when the key is missing)
    if with_key:
        assert response["statusCode"] == 415, body
        assert body["code"] == "INPUT_UNSUPPORTED_MEDIA_TYPE" and "application/json" in body["detail"]
    else:
        assert response["statusCode"] == 401, body
