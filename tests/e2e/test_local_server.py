"""End to end: `labelwise serve` (real process, real int8 model, embedded store) and real clients."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import requests

from tests.e2e.conftest import EXAMPLES, LiveServer, start_server, stop_server

pytestmark = pytest.mark.model


def post(server: LiveServer, path: str, body: object) -> requests.Response:
    return requests.post(f"{server.url}{path}", json=body, headers=server.headers(), timeout=120)


def curl(server: LiveServer, path: str, body_file: str) -> dict:
    """The README's curl command, verbatim apart from host and key."""
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    out = subprocess.run(
        [
            "curl", "-s", f"{server.url}{path}",
            "-H", "Content-Type: application/json",
            "-H", f"Authorization: Bearer {server.key}",
            "-d", f"@{EXAMPLES / body_file}",
        ],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_server_printed_a_key_on_first_start(live_server: LiveServer) -> None:
    assert live_server.key and live_server.key.startswith("lw_")


@pytest.mark.parametrize(
    "example", ["route_llm_queries.json", "blocked_or_accessible.json", "fact_or_opinion.json"]
)
def test_readme_examples_answer_in_jinas_shape(live_server: LiveServer, example: str) -> None:
    # Given a README example body
    body = json.loads((EXAMPLES / example).read_text())
    # When it is sent with curl
    out = curl(live_server, "/v1/classify", example)
    # Then every input gets a distribution over exactly the labels, best first
    assert out["model"] == "multilingual-e5-small"
    assert len(out["data"]) == len(body["input"])
    for i, row in enumerate(out["data"]):
        assert row["object"] == "classification" and row["index"] == i
        assert sorted(p["label"] for p in row["predictions"]) == sorted(body["labels"])
        scores = [p["score"] for p in row["predictions"]]
        assert sum(scores) == pytest.approx(1.0, abs=1e-4) and scores == sorted(scores, reverse=True)
        assert row["prediction"] == row["predictions"][0]["label"]
    assert out["usage"]["total_tokens"] > 0


def _readme_outputs() -> dict[str, dict]:
    """Each README example body file with the JSON answer printed under its curl command."""
    text = (EXAMPLES.parent / "README.md").read_text(encoding="utf-8")
    pattern = r"-d @examples/([\w.]+\.json)\n```\n\n```json\n(.*?)\n```"
    return {name: json.loads(body) for name, body in re.findall(pattern, text, flags=re.DOTALL)}


#: How far a printed score may be from this machine's. Integer products are exact on every CPU
#: (modelbuild/exact_int8.py); the float parts (layer norms, attention) round differently with
#: another instruction set, and dynamic int8 can carry a last-bit difference into one quantisation
#: step: 0.0097 on one of 14 texts between the README's machine and an AVX2 one. The U8S8 saturation
#: this test was written for moved scores by up to 0.13 and flipped a label.
README_SCORE_TOLERANCE = 0.02


def test_readme_example_outputs_are_what_the_server_answers(live_server: LiveServer) -> None:
    # Given the answers the README prints for its zero-shot examples (made on another machine)
    printed = _readme_outputs()
    assert sorted(printed) == ["blocked_or_accessible.json", "fact_or_opinion.json", "route_llm_queries.json"]
    differences = []
    for example, expected in printed.items():
        # When the same body is sent with curl to this machine's server
        out = curl(live_server, "/v1/classify", example)
        assert out["usage"] == expected["usage"], example
        assert [r["prediction"] for r in out["data"]] == [r["prediction"] for r in expected["data"]], example
        for got, want in zip(out["data"], expected["data"], strict=True):
            scores = {p["label"]: p["score"] for p in got["predictions"]}
            differences += [
                (example, got["index"], p["label"], p["score"], round(scores[p["label"]], 4))
                for p in want["predictions"]
                if abs(scores[p["label"]] - p["score"]) > README_SCORE_TOLERANCE
            ]
    # Then the labels are the printed ones and every score is within the tolerance: the answer
    # does not depend on the CPU
    assert differences == []


def test_readme_few_shot_example_gets_the_five_pages_right(live_server: LiveServer) -> None:
    # Given the README's eight training examples, and the five pages of its zero-shot example
    train = json.loads((EXAMPLES / "train_blocked_or_accessible.json").read_text())
    pages = json.loads((EXAMPLES / "blocked_or_accessible.json").read_text())["input"]
    # When a classifier is trained with the default num_iters and classifies the pages
    created = requests.post(
        f"{live_server.url}/v1/train", json=train, headers=live_server.headers(), timeout=120
    ).json()
    out = requests.post(
        f"{live_server.url}/v1/classify", json={"classifier_id": created["classifier_id"], "input": pages},
        headers=live_server.headers(), timeout=120,
    ).json()  # fmt: skip
    # Then every page gets the label the README says (three blocked, two accessible)
    assert [row["prediction"] for row in out["data"]] == ["Blocked"] * 3 + ["Accessible"] * 2


def test_routing_example_predictions(live_server: LiveServer) -> None:
    out = curl(live_server, "/v1/classify", "route_llm_queries.json")
    predictions = [row["prediction"] for row in out["data"]]
    # CRISPR ethics (zh) and merge sort vs quicksort (de) need reasoning; the Japanese short story is writing
    assert predictions[1] == "Complex reasoning"
    assert predictions[3] == "Complex reasoning"
    assert predictions[2] == "Creative writing"


def test_translations_get_the_same_label(live_server: LiveServer) -> None:
    # Given one complaint in four languages
    texts = [
        "My package never arrived and nobody answers my emails.",
        "Mein Paket ist nie angekommen und niemand beantwortet meine E-Mails.",
        "我的包裹一直没有到,也没有人回复我的邮件。",
        "荷物が届かず、誰もメールに返信してくれません。",
    ]
    r = post(
        live_server,
        "/v1/classify",
        {"labels": ["delivery problem", "praise for the product"], "input": texts},
    )
    assert r.status_code == 200, r.text
    assert {row["prediction"] for row in r.json()["data"]} == {"delivery problem"}


def test_english_model_by_cohere_alias(live_server: LiveServer) -> None:
    r = post(
        live_server,
        "/v1/classify",
        {
            "model": "embed-english-v3.0",
            "labels": ["sports", "cooking"],
            "input": ["The striker scored twice"],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["model"] == "all-minilm-l6-v2" and r.json()["data"][0]["prediction"] == "sports"


def test_long_input_is_windowed_then_truncated(live_server: LiveServer) -> None:
    long_text = "The delivery was late again and the parcel was damaged. " * 900  # > 8,192 tokens
    r = post(live_server, "/v1/classify", {"labels": ["delivery", "billing"], "input": [long_text, "short"]})
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    assert rows[0]["truncated"] is True and rows[1]["truncated"] is False
    assert rows[0]["prediction"] == "delivery"


def test_errors_over_http(live_server: LiveServer) -> None:
    r = post(live_server, "/v1/classify", {"model": "gpt-4o", "labels": ["a", "b"], "input": "x"})
    assert r.status_code == 400 and r.json()["code"] == "INPUT_MODEL_NOT_FOUND"
    assert "multilingual-e5-small" in r.json()["detail"]
    r = requests.post(f"{live_server.url}/v1/classify", json={"labels": ["a", "b"], "input": "x"}, timeout=30)
    assert r.status_code == 401
    r = requests.post(
        f"{live_server.url}/v1/classify",
        data="{",
        headers={**live_server.headers(), "content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 400 and r.json()["code"] == "INPUT_MALFORMED_JSON"


def test_few_shot_survives_a_restart(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Given a server with its own data dir, and a classifier trained through it
    data_dir = tmp_path_factory.mktemp("restart-data")
    first = start_server(data_dir)
    try:
        examples = [
            {"text": "My card was charged twice", "label": "billing"},
            {"text": "The refund has not arrived", "label": "billing"},
            {"text": "I was overcharged on my invoice", "label": "billing"},
            {"text": "Where is my parcel?", "label": "shipping"},
            {"text": "Tracking number does not work", "label": "shipping"},
            {"text": "The courier left the box at the wrong address", "label": "shipping"},
        ]
        r = post(first, "/v1/train", {"input": examples, "num_iters": 10})
        assert r.status_code == 200, r.text
        cid = r.json()["classifier_id"]
    finally:
        stop_server(first)
    # When the server restarts on the same data dir
    second = start_server(data_dir)
    try:
        # Then no new key is minted, the old key works, and the classifier answers
        assert second.key is None
        second.key = first.key
        r = post(
            second,
            "/v1/classify",
            {"classifier_id": cid, "input": ["I was billed twice", "my box is lost in transit"]},
        )
        assert r.status_code == 200, r.text
        assert [row["prediction"] for row in r.json()["data"]] == ["billing", "shipping"]
        info = requests.get(f"{second.url}/v1/classifiers/{cid}", headers=second.headers(), timeout=30).json()
        assert info["num_samples"] == 6 and info["version"] == 1 and info["classify_count"] == 1
    finally:
        stop_server(second)


def test_embeddings_route_answers_the_real_models_vectors(live_server: LiveServer) -> None:
    # Given three texts, two of them about the same thing
    texts = ["Where is my parcel?", "My package has not arrived yet", "The striker scored twice"]
    # When they are embedded under Jina's and Cohere's model names
    answers = [post(live_server, "/v1/embeddings", {"model": m, "input": texts})
               for m in ("jina-embeddings-v3", "embed-multilingual-v3.0")]  # fmt: skip
    # Then e5-small answers both: 384-dimension unit vectors, the related texts the closest pair
    for r in answers:
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["model"] == "multilingual-e5-small" and out["usage"]["total_tokens"] > 0
        vectors = [row["embedding"] for row in out["data"]]
        assert all(len(v) == 384 and abs(sum(x * x for x in v) - 1) < 1e-3 for v in vectors)
        cos = [[sum(a * b for a, b in zip(u, v, strict=True)) for v in vectors] for u in vectors]
        assert cos[0][1] > max(cos[0][2], cos[1][2])
    assert answers[0].json()["data"] == answers[1].json()["data"]
