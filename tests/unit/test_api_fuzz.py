"""Property-based fuzzing of the app with the inputs schemathesis does not make (issue 12 item 2).

schemathesis generates from the OpenAPI document, which cannot say "a lone surrogate escape", "an
integer of 4,301 digits" or "a 50,000-character label". Here hypothesis writes raw JSON text holding
them, in the request shapes of every route (Jina classify, Cohere classify, train, embeddings) and in
arbitrary trees, and every answer must be a 4xx or 2xx in the error envelope, never a 5xx.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelwise.api.app import create_app
from labelwise.embedding.registry import ModelRegistry
from labelwise.server import LocalLambdaContext, http_event
from labelwise.services import Services
from tests.support.fakes import HashingEmbedder, fake_model_settings

EXAMPLES = 200
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Raw(str):
    """A JSON fragment written as is (a string with escapes, a huge number)."""


def render(value: Any) -> str:
    """JSON text of ``value``, where :class:`Raw` leaves (and keys) are written verbatim."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{render_key(k)}: {render(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    return json.dumps(value)


def render_key(key: Any) -> str:
    return str(key) if isinstance(key, Raw) else json.dumps(str(key))


def escaped(text: str) -> str:
    return json.dumps(text)[1:-1]


plain_text = st.text(max_size=24)
# Lone surrogates written as JSON escapes, alone or beside other escapes; never a high one directly
# followed by a low one (that pair is a valid character).
surrogate_escape = st.integers(0xD800, 0xDFFF).map(lambda c: f"\\u{c:04x}")
surrogate_string = st.builds(
    lambda a, s, b, t: Raw(f'"{escaped(a)}{s}{escaped(b)}{t}"'),
    plain_text,
    surrogate_escape,
    plain_text,
    st.sampled_from(["", "\\u0041", "\\ud83d\\ude00", "\\udbff"]),
)
long_string = st.builds(
    lambda word, n: word * n, st.sampled_from(["refund ", "a", "é ", "日本", "\\", "\ufeff"]),
    st.integers(1_000, 60_000),
)  # fmt: skip
huge_int = st.builds(
    lambda sign, digits: Raw(sign + "1" + "0" * (digits - 1)), st.sampled_from(["", "-"]),
    st.integers(4_301, 6_000),
)  # fmt: skip
huge_float = st.sampled_from(["1e400", "-1e400", "1" * 5000 + ".5", "0." + "0" * 5000 + "1", "1E-400"]).map(
    Raw
)
ordinary = st.one_of(st.integers(-(10**6), 10**6), st.booleans(), st.none(), st.floats(allow_nan=False))

text = st.one_of(plain_text, surrogate_string, long_string, surrogate_string)
leaf = st.one_of(text, huge_int, huge_float, ordinary)
text_or_nasty = st.one_of(text, text, text, huge_int)
key = st.one_of(st.text(max_size=12), surrogate_string)


def small_list(items: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(items, min_size=0, max_size=4)


def optional_fields(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


jina_classify = st.fixed_dictionaries(
    {
        "input": st.one_of(
            text_or_nasty,
            small_list(st.one_of(text_or_nasty, st.fixed_dictionaries({"text": text_or_nasty}))),
        ),
    },
    optional={
        "labels": st.one_of(
            small_list(text_or_nasty), st.dictionaries(key, small_list(text_or_nasty), max_size=3)
        ),
        "classifier_id": text_or_nasty,
        "model": st.one_of(st.just("fake-model"), text_or_nasty),
        "num_iters": leaf,
    },
)
cohere_classify = st.fixed_dictionaries(
    {"inputs": small_list(text_or_nasty)},
    optional={
        "examples": small_list(st.fixed_dictionaries({"text": text_or_nasty, "label": text_or_nasty})),
        "truncate": st.one_of(st.sampled_from(["NONE", "START", "END"]), leaf),
        "model": text_or_nasty,
    },
)
train = st.fixed_dictionaries(
    {
        "input": small_list(
            st.fixed_dictionaries({"text": text_or_nasty, "label": text_or_nasty}, optional={"x": leaf})
        )
    },
    optional={
        "classifier_id": text_or_nasty,
        "access": st.one_of(st.sampled_from(["private", "public"]), leaf),
        "num_iters": st.one_of(st.integers(1, 5), huge_int, huge_float),
        "model": text_or_nasty,
    },
)
embeddings = st.fixed_dictionaries(
    {"input": st.one_of(text_or_nasty, small_list(text_or_nasty))},
    optional={"normalized": leaf, "embedding_type": leaf, "task": text_or_nasty, "model": text_or_nasty},
)
tree = st.recursive(
    leaf, lambda children: st.one_of(small_list(children), st.dictionaries(key, children, max_size=4)),
    max_leaves=12,
)  # fmt: skip

ROUTES = [
    ("POST", "/v1/classify", st.one_of(jina_classify, cohere_classify, tree)),
    ("POST", "/v1/train", st.one_of(train, tree)),
    ("POST", "/v1/embeddings", st.one_of(embeddings, tree)),
    ("POST", "/v1/classifiers", tree),
    ("GET", "/v1/classifiers", tree),
    ("GET", "/v1/classifiers/abc", tree),
    ("DELETE", "/v1/classifiers/abc", tree),
    ("GET", "/health", tree),
]


@pytest.fixture(scope="module")
def call(tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("fuzz")
    app_settings = fake_model_settings(root, quotas_off=True)
    services = Services(settings=app_settings, registry=ModelRegistry.from_embedders([HashingEmbedder()]))
    api_key, _ = services.keys.create("tenant-fuzz", "fuzz")
    app = create_app(services, scope="all")
    context = LocalLambdaContext(function_name="labelwise-fuzz", aws_request_id="fuzz")

    def invoke(method: str, path: str, raw: str, with_key: bool) -> dict[str, Any]:
        headers = {"content-type": "application/json", "host": "localhost"}
        if with_key:
            headers["authorization"] = f"Bearer {api_key}"
        # The body as the client sends it: UTF-8 of the JSON text (escapes stay escapes).
        event = http_event(method, path, headers, raw.encode("utf-8"), "127.0.0.1", "fuzz-request")
        return app.resolve(event, context)  # type: ignore[arg-type]  # duck-typed context

    return invoke


def assert_clean_answer(response: dict[str, Any], raw: str) -> None:
    status = int(response["statusCode"])
    shown = raw if len(raw) < 300 else raw[:300] + "..."
    assert status < 500, (status, response.get("body"), shown)
    body = response.get("body") or ""
    body.encode("utf-8")  # what goes on the wire is valid UTF-8
    if status >= 400:
        out = json.loads(body)
        cohere_envelope = set(out) == {"message"} and out["message"]
        jina_envelope = out.get("code") and out.get("detail") and out.get("request_id") == "fuzz-request"
        assert cohere_envelope or jina_envelope, (status, out, shown)


@pytest.mark.parametrize(("method", "path", "bodies"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_fuzzed_bodies_get_no_5xx_and_the_error_envelope(
    call: Any, method: str, path: str, bodies: st.SearchStrategy[Any]
) -> None:
    # Given request bodies holding lone surrogate escapes, 4,301+ digit integers, huge floats and
    # long strings, in the route's own shape and as arbitrary JSON trees, with a key or without
    @FUZZ
    @given(body=bodies, with_key=st.booleans())
    def run(body: Any, with_key: bool) -> None:
        raw = render(body)
        # When the route is called with it
        response = call(method, path, raw, with_key)
        # Then the answer is not a 5xx, and an error comes in the envelope
        assert_clean_answer(response, raw)

    run()


@FUZZ
@given(fragment=st.one_of(surrogate_string, huge_int, huge_float), where=st.integers(0, 6))
def test_a_nasty_value_in_each_classify_field_is_a_clean_4xx(call: Any, fragment: Raw, where: int) -> None:
    # Given a valid zero-shot, Cohere or train body with one field replaced by a nasty value
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("/v1/classify", {"input": [fragment], "labels": ["a", "b"]}),
        ("/v1/classify", {"input": ["x"], "labels": [fragment, "b"]}),
        ("/v1/classify", {"input": [{"text": fragment}], "labels": {"g": ["a", "b"]}}),
        ("/v1/classify", {"inputs": [fragment], "examples": [{"text": "a", "label": "l"}] * 2}),
        ("/v1/classify", {"inputs": ["x"], "examples": [{"text": fragment, "label": "l"}] * 2}),
        ("/v1/train", {"input": [{"text": fragment, "label": "a"}]}),
        ("/v1/train", {"input": [{"text": "t", "label": fragment}]}),
    ]
    path, body = bodies[where]
    raw = render(body)
    # When it is sent with a key
    response = call("POST", path, raw, True)
    # Then it is refused with a 4xx in the envelope (400 malformed JSON, or 422 for a wrong type)
    assert_clean_answer(response, raw)
    assert 400 <= int(response["statusCode"]) < 500, (response, raw[:300])
