"""The contract test (issue 13 item 7): labelwise's answers, over HTTP from the real server, against
the response schemas of Jina's reference (tests/contract). The ``jina_contract`` fixture of this
directory validates every answer of every e2e test; this test makes sure each kind is among them:
classification (labels as a list and as groups, few-shot), training (create, single-item update),
the classifier list (GET and Jina's POST), delete, and errors (400, 401, 404, 422)."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import ContractRecorder, LiveServer
from tests.support.reference import jina_response_schema

pytestmark = pytest.mark.model

EXAMPLES = [
    {"text": "My card was charged twice", "label": "billing"},
    {"text": "I want my money back for the duplicate charge", "label": "billing"},
    {"text": "Where is my parcel?", "label": "shipping"},
    {"text": "The courier never delivered the box", "label": "shipping"},
]


def test_every_kind_of_answer_meets_jinas_response_schemas(
    live_server: LiveServer, jina_contract: ContractRecorder
) -> None:
    url, headers = live_server.url, live_server.headers()

    def call(method: str, path: str, body: object = None, auth: bool = True) -> requests.Response:
        return requests.request(
            method, f"{url}{path}", json=body, headers=headers if auth else {}, timeout=120
        )

    # When each kind of request is sent, good and bad
    labels = ["billing", "shipping", "other"]
    assert call(
        "POST", "/v1/classify", {"model": "jina-embeddings-v3", "input": "refund me", "labels": labels}
    ).ok
    groups = {"topic": labels, "tone": ["angry", "calm"]}
    assert call("POST", "/v1/classify", {"input": [{"text": "refund me now!"}], "labels": groups}).ok
    trained = call(
        "POST", "/v1/train", {"model": "jina-embeddings-v3", "access": "private", "input": EXAMPLES}
    )
    cid = trained.json()["classifier_id"]
    assert call("POST", "/v1/train", {"classifier_id": cid, "input": EXAMPLES[0]}).ok
    assert call("POST", "/v1/classify", {"classifier_id": cid, "input": ["charged twice"]}).ok
    assert call("GET", "/v1/classifiers").ok and call("POST", "/v1/classifiers").ok
    bad = [
        call("POST", "/v1/classify", {"input": "x", "labels": []}),
        call("POST", "/v1/classify", {"input": "x", "labels": labels}, auth=False),
        call("POST", "/v1/classify", {"classifier_id": "no-such-classifier", "input": "x"}),
        call("POST", "/v1/train", {"input": [{"text": "no label"}]}),
    ]
    assert [r.status_code for r in bad] == [400, 401, 404, 422]
    assert call("DELETE", f"/v1/classifiers/{cid}").ok

    # Then every answer was checked against a reference schema, and none broke it (the fixture fails
    # the test at teardown otherwise)
    kinds = [("POST", "/v1/classify", 200), ("POST", "/v1/train", 200), ("GET", "/v1/classifiers", 200),
             ("POST", "/v1/classifiers", 200), ("DELETE", f"/v1/classifiers/{cid}", 200),
             ("POST", "/v1/classify", 400), ("POST", "/v1/train", 422)]  # fmt: skip
    expected = {jina_response_schema(*kind) for kind in kinds}
    assert None not in expected and len(expected) == 7
    assert expected <= {schema for *_, schema in jina_contract.checked}
    assert jina_contract.errors == []
