"""Jina's documented fact-vs-opinion request against `labelwise serve` (issue 11, section 4)."""

from __future__ import annotations

import pytest
import requests

from labelwise.evaluation.examples import JINA_GOLD, JINA_LABELS, JINA_MODEL, JINA_SENTENCES
from tests.e2e.conftest import LiveServer

pytestmark = pytest.mark.model


def _classify(live_server: LiveServer) -> list[dict]:
    body = {"model": JINA_MODEL, "labels": list(JINA_LABELS), "input": list(JINA_SENTENCES)}
    r = requests.post(f"{live_server.url}/v1/classify", json=body, headers=live_server.headers(), timeout=120)
    assert r.status_code == 200, r.text
    return sorted(r.json()["data"], key=lambda item: item["index"])


def test_jina_fact_opinion_request_is_answered_in_jinas_shape_and_deterministically(
    live_server: LiveServer,
) -> None:
    # Given Jina's request: its model name, its two labels and the eight sentences
    # When it is sent twice
    first, second = _classify(live_server), _classify(live_server)
    # Then every sentence gets one of the two labels, with scores over both that sum to 1
    assert [item["index"] for item in first] == list(range(len(JINA_SENTENCES)))
    for item in first:
        assert item["prediction"] in JINA_LABELS
        scores = {p["label"]: p["score"] for p in item["predictions"]}
        assert set(scores) == set(JINA_LABELS)
        assert sum(scores.values()) == pytest.approx(1.0, abs=1e-6)
    # And the same request gets the same answer
    assert first == second


@pytest.mark.xfail(
    strict=True,
    reason="issue 11 section 4, not met: e5-small agrees with Jina's published answer on 3 of 8 "
    "sentences (it calls most of them `fact`); the goal is 7 of 8",
)
def test_jina_fact_opinion_example_agrees_with_jinas_published_answer(live_server: LiveServer) -> None:
    # Given Jina's request and its published answer (1, 3, 5, 7 opinion; 2, 4, 6, 8 fact)
    # When labelwise classifies it zero-shot
    data = _classify(live_server)
    # Then at least 7 of the 8 sentences get Jina's label
    agree = sum(item["prediction"] == JINA_LABELS[gold] for item, gold in zip(data, JINA_GOLD, strict=True))
    assert agree >= 7, f"{agree} of 8"
