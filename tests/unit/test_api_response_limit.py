"""Lambda's 6 MB response limit (issue 12, item 10): every request the API accepts answers a Lambda
response that fits, and the rest get a clear 4xx naming the limit before any work is done.

The size is measured on what the Lambda runtime actually sends: the handler's return value (the API
Gateway proxy envelope, with the JSON body escaped inside it) serialised as JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from labelwise.api.app import create_app
from labelwise.classify.zeroshot import UNGROUPED
from labelwise.embedding.registry import ModelRegistry
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder


@pytest.fixture
def services(settings: Settings) -> Services:
    return Services(settings=settings, registry=ModelRegistry.from_embedders([HashingEmbedder()]))


@pytest.fixture
def call(services: Services, api_event: Any, lambda_context: Any):
    key, _ = services.keys.create("tenant-a", "test")
    app = create_app(services, scope="all")

    def invoke(body: Any, path: str = "/v1/classify") -> tuple[int, dict[str, Any], int]:
        event = api_event("POST", path, body, headers={"authorization": f"Bearer {key}"})
        response = app.resolve(event, lambda_context)
        return response["statusCode"], json.loads(response["body"]), len(json.dumps(response).encode())

    return invoke


#: What the Lambda runtime accepts as a synchronous response (6 MB), as the tests hold the API to it.
LAMBDA_RESPONSE_LIMIT = 6 * 1000 * 1000

LABELS_128 = [f"support ticket category number {i:03d}" for i in range(128)]
INPUTS_1024 = [f"my order {i} never arrived and nobody answers" for i in range(1024)]


def test_1024_inputs_by_128_labels_is_refused_with_a_4xx_naming_the_limit(call: Any) -> None:
    # Given the largest request the schema allows in inputs, with 128 labels of 35 characters
    body = {"labels": LABELS_128, "input": INPUTS_1024}
    # When it is sent
    status, payload, size = call(body)
    # Then it is refused before any work with a 400 (as Jina's API answers what a request cannot
    # have), in the error envelope, naming the limit and the ways out
    assert status == 400, (status, size)
    assert payload["code"] == "RESPONSE_TOO_LARGE"
    assert "6 MB" in payload["detail"] and "top_n" in payload["detail"]


def test_the_same_request_with_top_n_fits_and_lists_the_best_labels_only(call: Any) -> None:
    # Given the same request asking for the 3 best labels per input
    body = {"labels": LABELS_128, "input": INPUTS_1024, "top_n": 3}
    # When it is sent
    status, payload, size = call(body)
    # Then it answers, under the Lambda limit, with 3 predictions per input, best first
    assert status == 200 and size <= LAMBDA_RESPONSE_LIMIT, (status, size)
    for row in payload["data"]:
        scores = [p["score"] for p in row["predictions"]]
        assert len(scores) == 3 and scores == sorted(scores, reverse=True)
        assert row["prediction"] == row["predictions"][0]["label"]


def test_top_n_applies_to_each_label_group(call: Any) -> None:
    # Given two label groups and top_n 1
    body = {"labels": {"topic": ["billing", "shipping", "returns"], "tone": ["angry", "calm"]},
            "input": ["refund please"], "top_n": 1}  # fmt: skip
    # When classified
    status, payload, _ = call(body)
    # Then each group lists its single best label
    assert status == 200
    predictions = payload["data"][0]["predictions"]
    assert {g: len(p) for g, p in predictions.items()} == {"topic": 1, "tone": 1}


def test_1024_float_embeddings_of_a_64_dimension_model_fit(call: Any) -> None:
    # Given 1,024 texts asked as float embeddings of the fake model (64 dimensions)
    status, _, size = call({"input": INPUTS_1024}, path="/v1/embeddings")
    # Then the answer fits under the limit
    assert status == 200 and size <= LAMBDA_RESPONSE_LIMIT, (status, size)


def test_1024_float_embeddings_of_384_dimensions_are_refused_and_base64_fits(
    settings: Settings, api_event: Any, lambda_context: Any
) -> None:
    from dataclasses import replace

    from tests.support.fakes import fake_manifest

    # Given a model of e5-small's 384 dimensions
    wide = HashingEmbedder(replace(fake_manifest(), dimension=384))
    services = Services(settings=settings, registry=ModelRegistry.from_embedders([wide]))
    key, _ = services.keys.create("tenant-a", "test")
    app = create_app(services, scope="all")

    def post(body: Any) -> tuple[int, dict[str, Any], int]:
        event = api_event("POST", "/v1/embeddings", body, headers={"authorization": f"Bearer {key}"})
        response = app.resolve(event, lambda_context)
        return response["statusCode"], json.loads(response["body"]), len(json.dumps(response).encode())

    # When 1,024 texts are asked as float lists, then as base64
    as_floats = post({"input": INPUTS_1024})
    as_base64 = post({"input": INPUTS_1024, "embedding_type": "base64"})
    # Then floats are refused with the limit and the remedy named, and base64 answers under the limit
    assert as_floats[0] == 400 and "base64" in as_floats[1]["detail"], as_floats[:2]
    assert as_base64[0] == 200 and as_base64[2] <= LAMBDA_RESPONSE_LIMIT


def test_embeddings_bound_refuses_a_response_over_the_limit() -> None:
    from labelwise.classify.response_size import embeddings_bytes_bound

    # Given the default model's 384 dimensions as float JSON, for 1,024 texts
    # Then the bound exceeds the limit (so such a request is refused), and base64 fits
    assert embeddings_bytes_bound(1024, 384, "float") > LAMBDA_RESPONSE_LIMIT
    assert embeddings_bytes_bound(1024, 384, "base64") < LAMBDA_RESPONSE_LIMIT


label_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40
).filter(lambda s: s.strip() != "")


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    labels=st.lists(label_text, min_size=2, max_size=12, unique_by=lambda s: s.strip()),
    n_inputs=st.integers(1, 20),
    top_n=st.one_of(st.none(), st.integers(1, 12)),
)
def test_the_bound_is_never_below_the_real_lambda_response(
    call: Any, labels: list[str], n_inputs: int, top_n: int | None
) -> None:
    # Given any accepted zero-shot request (non-ASCII and quote-heavy labels included)
    body: dict[str, Any] = {"labels": labels, "input": [f"text {i}" for i in range(n_inputs)]}
    if top_n is not None:
        body["top_n"] = top_n
    # When it is answered
    status, payload, size = call(body)
    if status != 200:  # labels the API refuses (e.g. equal after normalisation) are not this test's
        assert status == 400, payload
        return
    # Then the bound computed before any work is at least the size the runtime sends
    from labelwise.classify.response_size import classify_bytes_bound

    assert classify_bytes_bound(n_inputs, {UNGROUPED: labels}, top_n) >= size


def test_a_cohere_request_whose_answer_cannot_fit_is_refused_in_cohere_s_envelope(call: Any) -> None:
    # Given Cohere's shape: 96 inputs and examples of 512 labels of 250 characters (each answer row
    # scores every label)
    labels = [f"{i:03d}" + "x" * 247 for i in range(512)]
    examples = [{"text": f"example {i} {j}", "label": lab} for i, lab in enumerate(labels) for j in (0, 1)]
    body = {"inputs": [f"input {i}" for i in range(96)], "examples": examples}
    # When it is sent
    status, payload, _ = call(body)
    # Then the same check refuses it with a 400, in Cohere's envelope, naming the limit
    assert status == 400, payload
    assert set(payload) == {"message"} and "6 MB" in payload["message"]


def test_the_largest_train_answer_fits() -> None:
    from labelwise.api.schemas import TrainResponse, Usage
    from labelwise.settings import Settings as Limits

    # Given the largest /v1/train answer: a classifier of the most labels, each of the most
    # characters, all escaped as \uXXXX in the body and once more in the envelope
    limits = Limits.from_environ({"LABELWISE_DATA_DIR": "/x", "LABELWISE_CACHE_DIR": "/x"})
    labels = [f"{i:04d}" + "\u2028" * (limits.max_label_chars - 4) for i in range(limits.max_labels)]
    answer = TrainResponse(classifier_id="c" * 36, num_samples=1024, total_samples=10**9, labels=labels,
                           version=10**6, usage=Usage(total_tokens=10**6, prompt_tokens=10**6))  # fmt: skip
    # When it is put in the proxy envelope as the runtime sends it
    envelope = {"statusCode": 200, "headers": {"content-type": "application/json"},
                "body": answer.model_dump_json()}  # fmt: skip
    body = json.dumps(json.loads(envelope["body"]), ensure_ascii=True)
    size = len(json.dumps({**envelope, "body": body}).encode())
    # Then it fits under Lambda's limit, so /v1/train needs no size check of its own
    assert size <= LAMBDA_RESPONSE_LIMIT, size


def test_a_listing_that_cannot_fit_is_refused_and_one_that_fits_answers(
    settings: Settings, api_event: Any, lambda_context: Any
) -> None:
    # Given a deployment whose responses may take 64 KiB, and a tenant with 3 classifiers of 40
    # labels of 250 characters (about 2 x 30 KB once escaped in the envelope)
    small = settings.model_copy(update={"max_response_bytes": 64 * 1024})
    services = Services(settings=small, registry=ModelRegistry.from_embedders([HashingEmbedder()]))
    key, _ = services.keys.create("tenant-a", "test")
    app = create_app(services, scope="all")

    def call(method: str, path: str, body: Any = None) -> tuple[int, Any, int]:
        event = api_event(method, path, body, headers={"authorization": f"Bearer {key}"})
        response = app.resolve(event, lambda_context)
        return response["statusCode"], json.loads(response["body"]), len(json.dumps(response).encode())

    labels = [f"{i:02d} " + "y" * 247 for i in range(40)]
    examples = [{"text": f"example {label[:2]}", "label": label} for label in labels]
    ids = [call("POST", "/v1/train", {"input": examples})[1]["classifier_id"] for _ in range(3)]
    # When they are listed, and again after two are deleted
    too_many = call("GET", "/v1/classifiers")
    for cid in ids[1:]:
        assert call("DELETE", f"/v1/classifiers/{cid}")[0] == 200
    one = call("GET", "/v1/classifiers")
    # Then the first is a clear 400 naming the limit, and the second answers, within the bound
    assert too_many[0] == 400 and too_many[1]["code"] == "RESPONSE_TOO_LARGE", too_many[:2]
    assert "MB" in too_many[1]["detail"]
    assert one[0] == 200 and [c["classifier_id"] for c in one[1]] == ids[:1]
    from labelwise.classify.response_size import json_bytes_bound

    assert one[2] <= json_bytes_bound(one[1]) <= small.max_response_bytes
