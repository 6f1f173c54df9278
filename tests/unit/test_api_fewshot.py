"""Few-shot routes over fakes: train, classify by id, metadata, delete; two tenants, every access."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labelwise.api.app import create_app
from labelwise.embedding.registry import ModelRegistry
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder

EXAMPLES = [
    {"text": "goal scored by the striker", "label": "sports"},
    {"text": "the keeper saved a penalty", "label": "sports"},
    {"text": "parliament passed the budget", "label": "politics"},
    {"text": "the senator won the vote", "label": "politics"},
]


@pytest.fixture
def services(settings: Settings) -> Services:
    return Services(settings=settings, registry=ModelRegistry.from_embedders([HashingEmbedder()]))


class Client:
    def __init__(self, services: Services, api_event: Any, context: Any, key: str | None) -> None:
        self.app = create_app(services, scope="all")
        self.api_event, self.context, self.key = api_event, context, key

    def __call__(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {self.key}"} if self.key else {}
        response = self.app.resolve(self.api_event(method, path, body, headers=headers), self.context)
        return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def alice(services: Services, api_event: Any, lambda_context: Any) -> Client:
    return Client(services, api_event, lambda_context, services.keys.create("tenant-alice", "a")[0])


@pytest.fixture
def bob(services: Services, api_event: Any, lambda_context: Any) -> Client:
    return Client(services, api_event, lambda_context, services.keys.create("tenant-bob", "b")[0])


@pytest.fixture
def nobody(services: Services, api_event: Any, lambda_context: Any) -> Client:
    return Client(services, api_event, lambda_context, None)


def create(client: Client, access: str = "private") -> str:
    status, out = client("POST", "/v1/train", {"input": EXAMPLES, "access": access, "num_iters": 5})
    assert status == 200, out
    return str(out["classifier_id"])


def test_train_then_classify_by_id(alice: Client) -> None:
    # Given a classifier trained on sports/politics examples
    status, out = alice("POST", "/v1/train", {"input": EXAMPLES})
    assert status == 200
    assert out["num_samples"] == 4 and out["total_samples"] == 4 and out["version"] == 1
    assert out["labels"] == ["sports", "politics"] and out["usage"]["total_tokens"] > 0
    cid = out["classifier_id"]
    # When classifying new texts with its id
    status, out = alice(
        "POST",
        "/v1/classify",
        {"classifier_id": cid, "input": ["sports: a striker goal", "politics: a budget vote"]},
    )
    # Then the Jina response shape comes back with learned predictions
    assert status == 200, out
    assert [d["prediction"] for d in out["data"]] == ["sports", "politics"]
    assert all(abs(sum(p["score"] for p in d["predictions"]) - 1) < 1e-5 for d in out["data"])
    assert out["model"] == "fake-model"


def test_update_adds_examples_labels_and_versions(alice: Client) -> None:
    cid = create(alice)
    # When a later batch brings a new label
    batch = [{"text": "new phone released with a faster chip", "label": "tech"}] * 2
    status, out = alice("POST", "/v1/train", {"classifier_id": cid, "input": batch, "num_iters": 3})
    # Then the classifier grows
    assert status == 200, out
    # And num_samples counts this request's examples (Jina), total_samples the classifier's
    assert out["version"] == 2 and (out["num_samples"], out["total_samples"]) == (2, 6)
    assert out["labels"] == ["sports", "politics", "tech"]
    status, info = alice("GET", f"/v1/classifiers/{cid}")
    assert status == 200
    assert info["version"] == 2 and info["train_count"] == 2 and info["labels"][-1] == "tech"
    assert "examples" not in json.dumps(info) and "striker" not in json.dumps(info)


def test_list_and_delete(alice: Client, bob: Client) -> None:
    first, second = create(alice), create(alice, "public")
    create(bob)
    # When Alice lists her classifiers, by GET or by Jina's POST
    for method in ("GET", "POST"):
        status, out = alice(method, "/v1/classifiers")
        # Then a bare array of summaries comes back, hers only, oldest first
        assert status == 200 and [c["classifier_id"] for c in out] == [first, second]
        assert [c["access"] for c in out] == ["private", "public"]
        assert {c["updated_number"] for c in out} == {1} and {c["used_number"] for c in out} == {0}
        assert len({c["user_id"] for c in out}) == 1
    status, out = alice("DELETE", f"/v1/classifiers/{first}")
    assert status == 200 and out == {"classifier_id": first, "deleted": True}
    assert alice("GET", f"/v1/classifiers/{first}")[0] == 404
    assert alice("POST", "/v1/classify", {"classifier_id": first, "input": "goal"})[0] == 404


@pytest.mark.parametrize("access", ["private", "public"])
def test_other_tenant_sees_nothing_but_may_classify_public(alice: Client, bob: Client, access: str) -> None:
    # Given Alice's classifier
    cid = create(alice, access)
    # Then Bob can never read, train, list or delete it: 404, exactly like an unknown id
    for method, path, body in [
        ("GET", f"/v1/classifiers/{cid}", None),
        ("DELETE", f"/v1/classifiers/{cid}", None),
        ("POST", "/v1/train", {"classifier_id": cid, "input": EXAMPLES}),
        ("POST", "/v1/train", {"classifier_id": cid, "input": EXAMPLES, "access": "public"}),
    ]:
        status, out = bob(method, path, body)
        assert (status, out["code"]) == (404, "RESOURCE_NOT_FOUND"), (method, path)
    assert bob("GET", "/v1/classifiers")[1] == []
    # And he may classify with it only when it is public
    status, out = bob("POST", "/v1/classify", {"classifier_id": cid, "input": "goal"})
    assert status == (200 if access == "public" else 404)
    # And Alice's classifier is untouched
    assert alice("GET", f"/v1/classifiers/{cid}")[1]["version"] == 1


def test_unknown_id_and_foreign_private_id_answer_the_same(alice: Client, bob: Client) -> None:
    cid = create(alice)
    unknown = bob("GET", "/v1/classifiers/0f1e2d3c-0000-4000-8000-000000000000")
    foreign = bob("GET", f"/v1/classifiers/{cid}")
    assert unknown[0] == foreign[0] == 404
    assert unknown[1]["detail"] == foreign[1]["detail"]


def test_owner_may_change_access(alice: Client, bob: Client) -> None:
    cid = create(alice)
    status, _ = alice("POST", "/v1/train", {"classifier_id": cid, "input": EXAMPLES[:2], "access": "public"})
    assert status == 200
    assert alice("GET", f"/v1/classifiers/{cid}")[1]["access"] == "public"
    assert bob("POST", "/v1/classify", {"classifier_id": cid, "input": "goal"})[0] == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/train", {"input": EXAMPLES}),
        ("GET", "/v1/classifiers", None),
        ("GET", "/v1/classifiers/x", None),
        ("DELETE", "/v1/classifiers/x", None),
        ("POST", "/v1/classify", {"classifier_id": "x", "input": "y"}),
        ("POST", "/v1/classify", {"labels": ["a", "b"], "input": "y"}),
    ],
)
def test_every_route_needs_a_key(nobody: Client, method: str, path: str, body: Any) -> None:
    status, out = nobody(method, path, body)
    assert (status, out["code"]) == (401, "AUTH_MISSING_API_KEY")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"input": [{"text": "only one label", "label": "a"}] * 3}, 400, "INPUT_INVALID_LABELS"),
        ({"input": [{"text": " ", "label": "a"}, {"text": "x", "label": "b"}]}, 400, "INPUT_INVALID"),
        (
            {"input": [{"text": "x", "label": "a" * 257}, {"text": "y", "label": "b"}]},
            400,
            "INPUT_INVALID_LABELS",
        ),
        ({"input": EXAMPLES, "num_iters": 0}, 422, "INPUT_VALIDATION_ERROR"),
        ({"input": EXAMPLES, "num_iters": 101}, 422, "INPUT_VALIDATION_ERROR"),
        ({"input": EXAMPLES * 257}, 400, "INPUT_LIMIT_EXCEEDED"),
        ({"input": []}, 400, "INPUT_INVALID"),
        ({"input": EXAMPLES, "model": "no-such-model"}, 400, "INPUT_MODEL_NOT_FOUND"),
        (
            {"input": [{"image": "https://x/y.png", "label": "a"}, {"text": "b", "label": "b"}]},
            400,
            "INPUT_INVALID",
        ),
        (
            {"input": [{"image": "https://x/y.png", "label": "a"}, {"image": "aGk=", "label": "b"}]},
            400,
            "INPUT_UNSUPPORTED",
        ),
        ({"input": EXAMPLES, "access": "everyone"}, 422, "INPUT_VALIDATION_ERROR"),
        ({"input": [{"text": "x"}]}, 422, "INPUT_VALIDATION_ERROR"),
        ({"classifier_id": "nope", "input": EXAMPLES}, 404, "RESOURCE_NOT_FOUND"),
    ],
)
def test_bad_train_requests_are_4xx_and_change_nothing(
    alice: Client, body: Any, status: int, code: str
) -> None:
    before = alice("GET", "/v1/classifiers")[1]
    got, out = alice("POST", "/v1/train", body)
    assert (got, out["code"]) == (status, code), out
    assert alice("GET", "/v1/classifiers")[1] == before


def test_bad_updates_leave_the_classifier_untouched(alice: Client) -> None:
    cid = create(alice)
    before = alice("GET", f"/v1/classifiers/{cid}")[1]
    for body in (
        {"classifier_id": cid, "input": [{"text": "", "label": "sports"}]},
        {"classifier_id": cid, "input": EXAMPLES, "model": "all-minilm-l6-v2"},
        {"classifier_id": cid, "input": EXAMPLES, "num_iters": 1000},
    ):
        status, _ = alice("POST", "/v1/train", body)
        assert 400 <= status < 500
    assert alice("GET", f"/v1/classifiers/{cid}")[1] == before


def test_classify_with_labels_and_classifier_id_is_400(alice: Client) -> None:
    cid = create(alice)
    status, out = alice("POST", "/v1/classify", {"classifier_id": cid, "labels": ["a", "b"], "input": "x"})
    assert (status, out["code"]) == (400, "INPUT_INVALID")


def test_model_other_than_the_classifiers_is_400(alice: Client, services: Services) -> None:
    cid = create(alice)
    status, out = alice("POST", "/v1/classify", {"classifier_id": cid, "model": "fake-other", "input": "x"})
    # "fake-other" matches the fake model's alias glob, so it is the same model: accepted
    assert status == 200, out
    status, out = alice(
        "POST", "/v1/classify", {"classifier_id": cid, "model": "unknown-model", "input": "x"}
    )
    assert (status, out["code"]) == (400, "INPUT_MODEL_NOT_FOUND")


def limited_client(services: Services, api_event: Any, context: Any, tenant: str, **limits: int) -> Client:
    """A client of a new tenant on ``services`` with ``limits`` (settings fields) changed."""
    limited = Services(
        settings=services.settings.model_copy(update=limits),
        registry=services.registry,
        store=services.store,
        keys=services.keys,
    )
    return Client(limited, api_event, context, limited.keys.create(tenant, tenant)[0])


def test_classifier_limit_per_key_is_403(services: Services, api_event: Any, lambda_context: Any) -> None:
    client = limited_client(services, api_event, lambda_context, "tenant-c", max_classifiers_per_key=2)
    create(client), create(client)
    status, out = client("POST", "/v1/train", {"input": EXAMPLES})
    assert (status, out["code"]) == (403, "AUTHZ_RESOURCE_LIMIT_EXCEEDED")


def test_too_many_labels_is_400_label_limit_on_train_as_on_classify(
    services: Services, api_event: Any, lambda_context: Any
) -> None:
    # Given a deployment allowing 3 labels (per request, and per classifier), and a 2-label classifier
    client = limited_client(services, api_event, lambda_context, "tenant-d", max_labels=3)
    cid = create(client)
    four = [{"text": f"text {label}", "label": label} for label in ("a", "b", "c", "d")]
    two_new = [{"text": "a market rally", "label": "finance"}, {"text": "a new phone", "label": "tech"}]
    # When a classifier of 4 labels is created, one is extended to 4, and zero-shot gets 4 labels
    created = client("POST", "/v1/train", {"input": four})
    extended = client("POST", "/v1/train", {"classifier_id": cid, "input": two_new})
    zero_shot = client("POST", "/v1/classify", {"labels": ["a", "b", "c", "d"], "input": "x"})
    # Then each is Jina's 400 INPUT_LABEL_LIMIT_EXCEEDED naming the limit
    for status, out in (created, extended, zero_shot):
        assert (status, out["code"]) == (400, "INPUT_LABEL_LIMIT_EXCEEDED"), out
        assert "at most 3" in out["detail"]
    # And the classifier is unchanged
    assert client("GET", f"/v1/classifiers/{cid}")[1]["labels"] == ["sports", "politics"]
