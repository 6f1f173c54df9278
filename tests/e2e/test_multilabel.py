"""Multi-label classifiers end to end: `labelwise serve` with the real model, over HTTP and through
Cohere's SDK (issue 13, item 11)."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.conftest import LiveServer

cohere = pytest.importorskip("cohere")

pytestmark = pytest.mark.model

#: News snippets about sport, about politics, about both, and about neither.
EXAMPLES = [
    {"text": "The striker scored twice as the home team won the cup final", "labels": ["sports"]},
    {"text": "The tennis champion lost in the third round at Wimbledon", "labels": ["sports"]},
    {"text": "Parliament passed the budget after a long debate on taxes", "labels": ["politics"]},
    {"text": "The senator announced she will run for president next year", "labels": ["politics"]},
    {
        "text": "The minister promised public money for the new national stadium",
        "labels": ["sports", "politics"],
    },
    {
        "text": "The government banned the football federation over corruption",
        "labels": ["sports", "politics"],
    },
    {"text": "Bake the bread for forty minutes until golden", "labels": []},
    {"text": "The new phone has a brighter screen and a longer battery life", "labels": []},
]
INPUTS = [
    "The goalkeeper saved a penalty in the last minute of the match",
    "The prime minister's party lost its majority in the election",
    "Lentil soup with garlic and cumin is easy to cook",
]


def post(server: LiveServer, path: str, body: object) -> requests.Response:
    return requests.post(f"{server.url}{path}", json=body, headers=server.headers(), timeout=120)


@pytest.fixture(scope="module")
def classifier_id(live_server: LiveServer) -> str:
    response = post(live_server, "/v1/train", {"input": EXAMPLES, "multi_label": True})
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["multi_label"] is True and out["labels"] == ["sports", "politics"]
    return str(out["classifier_id"])


def test_train_multi_label_then_classify_with_a_threshold(
    live_server: LiveServer, classifier_id: str
) -> None:
    # Given a multi-label classifier trained through the real server
    # When classifying with the default threshold, and with threshold 0
    default = post(live_server, "/v1/classify", {"classifier_id": classifier_id, "input": INPUTS})
    everything = post(
        live_server, "/v1/classify", {"classifier_id": classifier_id, "input": INPUTS, "threshold": 0.0}
    )
    # Then every label has its own probability and `prediction` lists the labels at or above it
    assert default.status_code == 200, default.text
    rows = default.json()["data"]
    for row in rows:
        scores = {p["label"]: p["score"] for p in row["predictions"]}
        assert set(scores) == {"sports", "politics"} and all(0 <= s <= 1 for s in scores.values())
        assert row["prediction"] == [label for label, s in scores.items() if s >= 0.5]
    sport, politics, cooking = ({p["label"]: p["score"] for p in r["predictions"]} for r in rows)
    assert sport["sports"] > sport["politics"] and politics["politics"] > politics["sports"]
    assert max(cooking.values()) < max(sport["sports"], politics["politics"])
    assert all(sorted(r["prediction"]) == ["politics", "sports"] for r in everything.json()["data"])


def test_update_keeps_it_multi_label(live_server: LiveServer, classifier_id: str) -> None:
    # When more examples arrive, one with a plain `label`
    more = [
        {"text": "The marathon runner broke the world record in Berlin", "label": "sports"},
        {"text": "Voters go to the polls on Sunday to elect a new mayor", "labels": ["politics"]},
    ]
    response = post(live_server, "/v1/train", {"classifier_id": classifier_id, "input": more})
    # Then the classifier has a new version, still multi-label
    assert response.status_code == 200, response.text
    assert response.json()["version"] >= 2 and response.json()["multi_label"] is True


def test_zero_shot_multi_label(live_server: LiveServer) -> None:
    # When classifying zero-shot with multi_label
    body = {"input": INPUTS, "labels": ["sports", "politics", "cooking"], "multi_label": True}
    response = post(live_server, "/v1/classify", body)
    # Then scores are independent per label (not a distribution) and predictions are lists
    assert response.status_code == 200, response.text
    rows = response.json()["data"]
    assert all(isinstance(r["prediction"], list) for r in rows)
    best = [max(r["predictions"], key=lambda p: p["score"])["label"] for r in rows]
    assert best == ["sports", "politics", "cooking"]


def test_cohere_sdk_parses_multi_label_classifications(live_server: LiveServer, classifier_id: str) -> None:
    # Given Cohere's SDK pointed at labelwise
    co = cohere.Client(api_key=live_server.key, base_url=live_server.url, timeout=120)
    # When it classifies with the multi-label classifier as `model`
    response = co.classify(inputs=INPUTS, model=classifier_id)
    # Then its own objects carry the multi-label answer
    assert isinstance(response, cohere.ClassifyResponse)
    for c in response.classifications:
        assert c.classification_type == "multi-label"
        assert c.prediction is None and c.confidence is None
        assert set(c.labels) == {"sports", "politics"}
        assert c.predictions == [
            label
            for label in sorted(c.labels, key=lambda k: -c.labels[k].confidence)
            if c.labels[label].confidence >= 0.5
        ]
        assert c.confidences == [pytest.approx(c.labels[label].confidence) for label in c.predictions]
