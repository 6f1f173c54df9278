"""Cohere's classify shape on /v1/classify, over fakes: response shape, errors, caching, stored ids."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labelwise.api.app import create_app
from labelwise.classify import cohere
from labelwise.embedding.registry import ModelRegistry
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder
from tests.support.reference import COHERE_EMBED_MODELS

# Labels share words with their examples: the fake embedder's label priors then agree with them.
EXAMPLES = [
    {"text": "win money now claim your prize", "label": "Spam prize"},
    {"text": "claim your free prize money", "label": "Spam prize"},
    {"text": "meeting notes for tomorrow", "label": "Not spam meeting"},
    {"text": "agenda for the weekly meeting", "label": "Not spam meeting"},
]


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def services(settings: Settings, embedder: HashingEmbedder) -> Services:
    cohere.EXAMPLE_CLASSIFIERS = cohere.ExampleClassifierCache()
    return Services(settings=settings, registry=ModelRegistry.from_embedders([embedder]))


@pytest.fixture
def call(services: Services, api_event: Any, lambda_context: Any):
    app = create_app(services, scope="all")
    key, _ = services.keys.create("tenant-a", "a")

    def invoke(body: Any, path: str = "/v1/classify", auth: bool = True) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {key}"} if auth else {}
        response = app.resolve(api_event("POST", path, body, headers=headers), lambda_context)
        return response["statusCode"], json.loads(response["body"])

    return invoke


def test_cohere_request_gets_a_cohere_response(call: Any) -> None:
    # Given Cohere's request shape (recognised by `inputs`)
    body = {"inputs": ["claim your prize money", "notes from the meeting"], "examples": EXAMPLES}
    # When classifying
    status, out = call(body)
    # Then the answer is in Cohere's shape
    assert status == 200, out
    assert set(out) == {"id", "classifications", "meta"}
    assert out["meta"]["api_version"]["version"] == "1"
    assert out["meta"]["billed_units"]["input_tokens"] > 0
    first, second = out["classifications"]
    assert (first["prediction"], second["prediction"]) == ("Spam prize", "Not spam meeting")
    for row, text in zip(out["classifications"], body["inputs"], strict=True):
        assert row["input"] == text and row["classification_type"] == "single-label"
        assert row["predictions"] == [row["prediction"]] and row["confidences"] == [row["confidence"]]
        assert set(row["labels"]) == {"Spam prize", "Not spam meeting"}
        assert sum(v["confidence"] for v in row["labels"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["confidence"] == max(v["confidence"] for v in row["labels"].values())
    assert first["id"] != second["id"]


def test_identical_examples_are_not_embedded_twice(call: Any, embedder: HashingEmbedder) -> None:
    body = {"inputs": ["claim money"], "examples": EXAMPLES}
    _, first = call(body)
    embedder.calls.clear()
    status, out = call({**body, "inputs": ["meeting agenda"]})
    assert status == 200
    assert embedder.calls == [(("meeting agenda",), "input")]
    # billed as the first time (examples and the input), so that a cache hit does not show
    assert out["meta"]["billed_units"]["input_tokens"] == first["meta"]["billed_units"]["input_tokens"]


def test_model_names_map_to_our_models(call: Any) -> None:
    status, out = call({"inputs": ["claim money"], "examples": EXAMPLES, "model": "fake-english-v3.0"})
    assert status == 200, out


def test_stored_classifier_as_model(call: Any) -> None:
    # Given a classifier trained through /v1/train
    status, trained = call({"input": EXAMPLES}, path="/v1/train")
    assert status == 200
    # When a Cohere request names it as `model`, without examples
    status, out = call({"inputs": ["free prize money"], "model": trained["classifier_id"]})
    # Then it classifies with it
    assert status == 200, out
    assert out["classifications"][0]["prediction"] == "Spam prize"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"inputs": [], "examples": EXAMPLES}, 400, "at least one"),
        ({"inputs": ["x"] * 97, "examples": EXAMPLES}, 400, "at most 96"),
        ({"inputs": ["ok", ""], "examples": EXAMPLES}, 400, "empty"),
        ({"inputs": ["x"]}, 400, "examples"),
        ({"inputs": ["x"], "examples": EXAMPLES[:3]}, 400, "at least 2 examples"),
        ({"inputs": ["x"], "examples": EXAMPLES[:2]}, 400, "2 distinct labels"),
        ({"inputs": ["x"], "examples": EXAMPLES * 626}, 400, "at most 2500"),
        ({"inputs": ["x"], "examples": EXAMPLES, "preset": "my-preset"}, 400, "preset"),
        ({"inputs": ["x"], "examples": EXAMPLES, "truncate": "MIDDLE"}, 400, "truncate"),
        ({"inputs": ["word " * 50], "examples": EXAMPLES, "truncate": "NONE"}, 400, "too long"),
        ({"inputs": ["x"], "model": "no-such-classifier"}, 404, "not found"),
        ({"inputs": "x", "examples": EXAMPLES}, 400, "inputs"),
        ({"inputs": ["x"], "examples": [{"text": "a"}]}, 400, "label"),
    ],
)
def test_errors_use_cohere_envelope(call: Any, body: Any, status: int, words: str) -> None:
    got, out = call(body)
    assert got == status, out
    assert set(out) == {"message"} and words.lower() in out["message"].lower(), out


def test_truncate_start_and_end_are_accepted_for_long_inputs(call: Any) -> None:
    for side in ("START", "END"):
        status, out = call(
            {"inputs": ["meeting " * 60 + "prize money"], "examples": EXAMPLES, "truncate": side}
        )
        assert status == 200, out
        assert out["meta"]["warnings"]


def test_missing_key_in_cohere_shape(call: Any) -> None:
    status, out = call({"inputs": ["x"], "examples": EXAMPLES}, auth=False)
    assert status == 401 and set(out) == {"message"}


def test_jina_errors_keep_the_jina_envelope(call: Any) -> None:
    status, out = call({"input": ["x"], "labels": []})
    assert status == 400 and out["code"] == "INPUT_INVALID_LABELS"


def test_example_labels_have_the_same_length_limit_as_jina_labels(call: Any, settings: Settings) -> None:
    # Given examples whose label is one character over the label limit (Jina's labels are refused there)
    long_label = "x" * (settings.max_label_chars + 1)
    examples = [*EXAMPLES[:2], {"text": "a", "label": long_label}, {"text": "b", "label": long_label}]
    # When classifying with them
    status, out = call({"inputs": ["claim your prize"], "examples": examples})
    # Then it is a 400 in Cohere's envelope naming the limit, and nothing was cached
    assert status == 400 and "characters" in out["message"], out
    assert len(cohere.EXAMPLE_CLASSIFIERS) == 0


def test_billing_does_not_reveal_whether_another_tenant_sent_the_same_examples(
    services: Services, api_event: Any, lambda_context: Any
) -> None:
    # Given two tenants, and tenant A has already classified with some examples
    app = create_app(services, scope="all")
    keys = {t: services.keys.create(t, t)[0] for t in ("tenant-a", "tenant-b")}

    def billed(tenant: str, body: Any) -> int:
        headers = {"authorization": f"Bearer {keys[tenant]}"}
        response = app.resolve(api_event("POST", "/v1/classify", body, headers=headers), lambda_context)
        return int(json.loads(response["body"])["meta"]["billed_units"]["input_tokens"])

    body = {"inputs": ["claim your prize money"], "examples": EXAMPLES}
    first_a = billed("tenant-a", body)
    # When tenant B sends the same examples (served from the shared cache)
    again_b = billed("tenant-b", body)
    # Then B is billed what a first request costs: the cache hit does not show
    assert again_b == first_a


@pytest.mark.parametrize("model", COHERE_EMBED_MODELS)
def test_cohere_documented_model_names_work_with_examples(call: Any, model: str) -> None:
    # Given a Cohere request naming one of Cohere's documented embed models, with examples
    body = {"inputs": ["claim your prize money"], "examples": EXAMPLES, "model": model}
    # When classifying
    status, out = call(body)
    # Then the served model answers in Cohere's shape
    assert status == 200, out
    assert out["classifications"][0]["prediction"] == "Spam prize"


def test_truncate_null_means_the_default(call: Any) -> None:
    # Given an input over the model window, sent with `truncate: null` (the SDK's `truncate=None`)
    long_input = "meeting " * 60 + "prize money"
    # When classifying with null and with the default (END)
    with_null = call({"inputs": [long_input], "examples": EXAMPLES, "truncate": None})
    with_end = call({"inputs": [long_input], "examples": EXAMPLES, "truncate": "END"})
    # Then null answers exactly as END does: truncated, with its warning
    assert with_null[0] == 200, with_null[1]
    assert with_null[1]["classifications"][0]["labels"] == with_end[1]["classifications"][0]["labels"]
    assert with_null[1]["meta"]["warnings"] == with_end[1]["meta"]["warnings"]


def test_unknown_and_legacy_body_fields_are_ignored(call: Any) -> None:
    # Given the fields the SDK's `additional_body_parameters` may add and legacy ones (Cohere's
    # `return_likelihoods`, `outputIndicators`), none of which labelwise defines
    base = {"inputs": ["claim your prize money"], "examples": EXAMPLES}
    extra = {"return_likelihoods": "NONE", "outputIndicators": ["x"], "task_description": "spam?",
             "my_tracing_id": {"nested": [1, 2]}}  # fmt: skip
    # When classifying with and without them
    plain = call(base)
    tolerant = call({**base, **extra})
    # Then the extra fields change nothing
    assert tolerant[0] == 200, tolerant[1]
    assert tolerant[1]["classifications"][0]["labels"] == plain[1]["classifications"][0]["labels"]
