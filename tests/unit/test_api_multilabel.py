"""Multi-label classifiers and zero-shot multi-label through the API over fakes (issue 13, item 11)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from labelwise.api.app import create_app
from labelwise.classify import multilabel
from labelwise.classify.labels import distinctive_labels
from labelwise.embedding.registry import ModelRegistry
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder

#: Each label has its own words; a text may carry several labels, or none.
EXAMPLES = [
    {"text": "striker goal football match", "labels": ["sports"]},
    {"text": "football striker penalty goal", "labels": ["sports"]},
    {"text": "senator vote parliament budget", "labels": ["politics"]},
    {"text": "parliament budget senator law", "labels": ["politics"]},
    {"text": "senator football striker vote", "labels": ["sports", "politics"]},
    {"text": "parliament goal football budget", "labels": ["sports", "politics"]},
    {"text": "apple pie recipe oven", "labels": []},
    {"text": "oven recipe apple sugar", "labels": []},
]


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def services(settings: Settings, embedder: HashingEmbedder, monkeypatch: pytest.MonkeyPatch) -> Services:
    # the fake model's cosines are not a real model's: give it a calibration of its own
    monkeypatch.setitem(multilabel.CALIBRATIONS, "fake-model", multilabel.SigmoidCalibration(0.3, 0.1))
    return Services(settings=settings, registry=ModelRegistry.from_embedders([embedder]))


@pytest.fixture
def call(services: Services, api_event: Any, lambda_context: Any):
    app = create_app(services, scope="all")
    keys = {"a": services.keys.create("tenant-a", "a")[0], "b": services.keys.create("tenant-b", "b")[0]}

    def invoke(
        body: Any, path: str = "/v1/classify", who: str = "a", method: str = "POST"
    ) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {keys[who]}"}
        response = app.resolve(api_event(method, path, body, headers=headers), lambda_context)
        return response["statusCode"], json.loads(response["body"])

    return invoke


def _train(call: Any, **extra: Any) -> str:
    status, out = call({"input": EXAMPLES * 4, "multi_label": True, **extra}, path="/v1/train")
    assert status == 200, out
    assert out["multi_label"] is True and out["labels"] == ["sports", "politics"]
    return str(out["classifier_id"])


def test_multi_label_classifier_scores_labels_independently(call: Any) -> None:
    # Given a multi-label classifier trained on examples with label lists (some with none)
    cid = _train(call)
    # When classifying a text of each kind
    texts = [
        "football striker goal",
        "senator parliament vote",
        "senator vote football goal",
        "apple oven pie",
    ]
    status, out = call({"classifier_id": cid, "input": texts})
    # Then every label has its own probability (rows need not sum to 1) and `prediction` lists
    # the labels at or above 0.5, best first
    assert status == 200, out
    predictions = [d["prediction"] for d in out["data"]]
    assert predictions[0] == ["sports"] and predictions[1] == ["politics"]
    assert sorted(predictions[2]) == ["politics", "sports"] and predictions[3] == []
    for row in out["data"]:
        scores = {p["label"]: p["score"] for p in row["predictions"]}
        assert set(scores) == {"sports", "politics"}
        assert row["prediction"] == [label for label, s in scores.items() if s >= 0.5]
        assert row["score"] == max(scores.values())
    assert any(abs(sum(p["score"] for p in d["predictions"]) - 1) > 0.2 for d in out["data"])


def test_threshold_is_settable_per_request_and_top_n_does_not_cut_the_prediction(call: Any) -> None:
    # Given a multi-label classifier
    cid = _train(call)
    body = {"classifier_id": cid, "input": ["senator vote football goal"]}
    # When asking with threshold 0 (every label), 1 (none but certainties) and top_n 1
    _, everything = call({**body, "threshold": 0.0})
    _, strict = call({**body, "threshold": 1.0})
    _, top = call({**body, "threshold": 0.0, "top_n": 1})
    status, bad = call({**body, "threshold": 1.5})
    # Then the prediction follows the threshold, and top_n cuts only `predictions`
    assert sorted(everything["data"][0]["prediction"]) == ["politics", "sports"]
    assert all(
        p["score"] >= 1.0
        for p in strict["data"][0]["predictions"]
        if p["label"] in strict["data"][0]["prediction"]
    )
    assert len(top["data"][0]["predictions"]) == 1 and len(top["data"][0]["prediction"]) == 2
    assert status == 422, bad


def test_updates_keep_the_kind_learn_new_labels_and_make_versions(call: Any) -> None:
    # Given a multi-label classifier
    cid = _train(call)
    # When an update brings a new label (and a plain `label` item, which is a list of one)
    status, out = call(
        {"classifier_id": cid, "input": [
            {"text": "recipe oven apple pie", "labels": ["cooking"]},
            {"text": "sugar oven recipe", "label": "cooking"},
        ]},
        path="/v1/train",
    )  # fmt: skip
    # Then a new version has it, still multi-label
    assert status == 200, out
    assert out["version"] == 2 and out["multi_label"] is True
    assert out["labels"] == ["sports", "politics", "cooking"] and out["num_samples"] == 2
    status, classified = call({"classifier_id": cid, "input": ["football goal"]})
    assert status == 200 and len(classified["data"][0]["predictions"]) == 3


def test_label_lists_are_refused_by_single_label_classifiers(call: Any) -> None:
    # Given a single-label classifier
    status, out = call(
        {"input": [{"text": "goal", "label": "sports"}, {"text": "vote", "label": "politics"}]},
        path="/v1/train",
    )
    assert status == 200 and out["multi_label"] is False
    # When an update sends label lists, or an item has both or neither of label and labels
    sent_list = call(
        {"classifier_id": out["classifier_id"], "input": [{"text": "goal", "labels": ["sports"]}]},
        path="/v1/train",
    )
    both = call({"input": [{"text": "goal", "label": "a", "labels": ["a"]}]}, path="/v1/train")
    neither = call({"input": [{"text": "goal"}]}, path="/v1/train")
    # Then each is refused, saying why
    assert sent_list[0] == 400 and "single-label" in sent_list[1]["detail"]
    assert both[0] == 422 and neither[0] == 422


def test_multi_label_classifiers_follow_the_access_rules(call: Any) -> None:
    # Given a private and a public multi-label classifier of tenant a
    private, public = _train(call), _train(call, access="public")
    # When tenant b classifies with each, and trains the public one
    assert call({"classifier_id": private, "input": ["goal"]}, who="b")[0] == 404
    assert call({"classifier_id": public, "input": ["goal"]}, who="b")[0] == 200
    status, _ = call(
        {"classifier_id": public, "input": [{"text": "x", "labels": []}]}, path="/v1/train", who="b"
    )
    # Then only classifying a public one is allowed
    assert status == 404


def test_zero_shot_multi_label_is_a_calibrated_sigmoid_per_label(
    call: Any, embedder: HashingEmbedder
) -> None:
    # Given labels and texts
    labels = ["sports news", "politics news", "cooking news"]
    texts = ["sports politics", "cooking"]
    # When classifying zero-shot with multi_label
    status, out = call({"input": texts, "labels": labels, "multi_label": True, "threshold": 0.4})
    # Then each score is sigmoid((cos - b) / T) of the model's calibration, and the prediction
    # lists the labels at or above the threshold
    assert status == 200, out
    X = embedder.embed(texts, "input").vectors
    L = embedder.embed(distinctive_labels(labels), "label").vectors
    expected = multilabel.zero_shot_probabilities(X, L, multilabel.SigmoidCalibration(0.3, 0.1))
    for row, want in zip(out["data"], expected, strict=True):
        got = {p["label"]: p["score"] for p in row["predictions"]}
        np.testing.assert_allclose([got[label] for label in labels], want, rtol=1e-5)
        assert row["prediction"] == [p["label"] for p in row["predictions"] if p["score"] >= 0.4]
    assert sorted(out["data"][0]["prediction"]) == ["politics news", "sports news"]
    # And single-label zero-shot is unchanged: a string prediction, scores summing to 1
    _, single = call({"input": texts, "labels": labels})
    assert isinstance(single["data"][0]["prediction"], str)


def test_zero_shot_multi_label_with_label_groups(call: Any) -> None:
    # Given named label groups
    groups = {"topic": ["sports", "politics"], "tone": ["happy", "sad"]}
    # When classifying zero-shot with multi_label
    status, out = call({"input": ["happy sports"], "labels": groups, "multi_label": True})
    # Then each group's prediction is a list
    assert status == 200, out
    assert set(out["data"][0]["prediction"]) == {"topic", "tone"}
    assert all(isinstance(v, list) for v in out["data"][0]["prediction"].values())


def test_cohere_shape_for_a_multi_label_classifier(call: Any) -> None:
    # Given a multi-label classifier
    cid = _train(call)
    # When a Cohere request names it as model
    status, out = call({"inputs": ["senator vote football goal", "apple oven pie"], "model": cid})
    # Then each classification is multi-label: no single prediction, the labels at or above 0.5
    # with their confidences, every label's confidence independent
    assert status == 200, out
    for row in out["classifications"]:
        assert row["classification_type"] == "multi-label"
        assert row["prediction"] is None and row["confidence"] is None
        confidences = {label: v["confidence"] for label, v in row["labels"].items()}
        assert row["predictions"] == sorted(
            (label for label, c in confidences.items() if c >= 0.5), key=lambda label: -confidences[label]
        )
        assert row["confidences"] == [confidences[label] for label in row["predictions"]]
    assert sorted(out["classifications"][0]["predictions"]) == ["politics", "sports"]
    assert out["classifications"][1]["predictions"] == []


def test_a_stored_multi_label_classifier_loads_as_multi_label(call: Any) -> None:
    # Given a multi-label classifier, and a process that has not seen it (empty weights cache)
    from labelwise.classify import fewshot

    cid = _train(call)
    fewshot.WEIGHTS_CACHE.clear()
    # When classifying with it (its weights read from the store)
    status, out = call({"classifier_id": cid, "input": ["football striker goal"]})
    # Then the stored header's kind makes it multi-label again
    assert status == 200, out
    assert out["data"][0]["prediction"] == ["sports"]


def test_response_size_bound_covers_a_multi_label_prediction_of_every_label(call: Any) -> None:
    # Given many long labels, all of which a threshold of 0 predicts
    from labelwise.classify.response_size import ENVELOPE_BYTES, classify_bytes_bound

    labels = [f"label number {i} " + "x" * 40 for i in range(60)]
    status, out = call({"input": ["a", "b"], "labels": labels, "multi_label": True, "threshold": 0.0})
    assert status == 200 and len(out["data"][0]["prediction"]) == 60
    # When bounding the answer from the request alone
    bound = classify_bytes_bound(2, {"": labels}, None, multi_label=True)
    # Then the bound covers the body as the envelope carries it (escaped once more), and the
    # single-label bound would not have counted the prediction lists
    escaped_body = len(json.dumps(json.dumps(out, separators=(",", ":"))))
    assert escaped_body + ENVELOPE_BYTES <= bound
    assert classify_bytes_bound(2, {"": labels}, None) < bound


def test_the_listing_and_the_classifier_say_which_kind_it_is(call: Any) -> None:
    # Given a multi-label and a single-label classifier
    multi = _train(call)
    single_label = [{"text": "goal", "label": "sports"}, {"text": "vote", "label": "politics"}]
    status, out = call({"input": single_label}, path="/v1/train")
    assert status == 200, out
    single = out["classifier_id"]
    # When their owner lists them and reads each
    status, listing = call(None, path="/v1/classifiers", method="GET")
    assert status == 200, listing
    # Then the listing's metadata and each classifier's own answer name the kind
    kinds = {entry["classifier_id"]: entry["metadata_"]["multi_label"] for entry in listing}
    assert kinds == {multi: True, single: False}
    for cid, kind in ((multi, True), (single, False)):
        status, info = call(None, path=f"/v1/classifiers/{cid}", method="GET")
        assert status == 200 and info["multi_label"] is kind, info


def test_a_classifier_stored_before_the_kind_was_kept_reports_it_from_its_weights(
    call: Any, services: Services, embedder: HashingEmbedder
) -> None:
    # Given a multi-label classifier whose stored metadata predates the kind (as an earlier release
    # wrote it)
    from labelwise.classify import fewshot
    from labelwise.storage.ports import utcnow

    cid = _train(call)
    meta = services.store.get_meta(cid)
    assert meta is not None and meta.multi_label is True
    weights = services.store.load_weights(cid, meta.version)
    old = meta.model_copy(update={"id": "old-classifier", "multi_label": None, "created_at": utcnow()})
    services.store.create(old, weights)
    fewshot.WEIGHTS_CACHE.clear()
    # When its owner reads it
    status, info = call(None, path="/v1/classifiers/old-classifier", method="GET")
    # Then its weights say it is multi-label
    assert status == 200 and info["multi_label"] is True, info
    # And the listing, which reads no weights, leaves the kind out rather than guess it
    status, listing = call(None, path="/v1/classifiers", method="GET")
    entry = next(e for e in listing if e["classifier_id"] == "old-classifier")
    assert "multi_label" not in entry["metadata_"]
    # And its next training call records the kind
    status, out = call({"classifier_id": "old-classifier", "input": EXAMPLES[:2]}, path="/v1/train")
    assert status == 200, out
    status, listing = call(None, path="/v1/classifiers", method="GET")
    entry = next(e for e in listing if e["classifier_id"] == "old-classifier")
    assert entry["metadata_"]["multi_label"] is True
