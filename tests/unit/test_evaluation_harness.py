"""The evaluation harness (labelwise.evaluation.harness, .serve, .engines): the real API in-process over
a fake model, its client, and the scrape of a server's start-up output."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from labelwise.evaluation.engines import MemoEmbedder
from labelwise.evaluation.harness import ApiClient, local_api
from labelwise.evaluation.serve import wait_until_listening
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder

LABELS = ["billing refund", "parcel delivery"]
TEXTS = ["refund my billing please", "where is my parcel delivery", "billing refund now"]


def _child(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_zero_shot_through_the_local_api_scores_in_column_order(settings: Settings) -> None:
    # Given the real API in this process over the fake model, and a client sending one text a request
    with local_api(settings, [HashingEmbedder()]) as url:
        client = ApiClient(url, chunk=1)
        # When three texts are classified zero-shot, the columns in reverse label order
        columns = LABELS[::-1]
        scores = client.classify(TEXTS, columns, model="fake-model", labels=LABELS, check_top=True)
    # Then each row holds probabilities in the order of the columns, the matching label on top
    assert scores.shape == (3, 2)
    assert np.allclose(scores.sum(axis=1), 1.0)
    assert [columns[i] for i in scores.argmax(axis=1)] == [LABELS[0], LABELS[1], LABELS[0]]


def test_train_in_chunks_then_classify_by_id_and_delete(settings: Settings) -> None:
    # Given the local API over the fake model and a client sending two examples a request
    with local_api(settings, [HashingEmbedder()], request_limits=False) as url:
        client = ApiClient(url, chunk=2)
        # When a classifier is trained on four examples (two /v1/train calls) and classifies by id
        texts = ["refund billing", "parcel delivery", "billing invoice", "delivery late"]
        cid = client.train("fake-model", texts, ["billing", "parcel", "billing", "parcel"], num_iters=None)
        scores = client.classify(["billing refund", "parcel late"], ["billing", "parcel"], classifier_id=cid)
        client.delete(cid)
        # Then it learned both labels, and after the delete the id is unknown
        assert scores.argmax(axis=1).tolist() == [0, 1]
        with pytest.raises(RuntimeError, match="404"):
            client.classify(["billing"], ["billing", "parcel"], classifier_id=cid)


def test_memo_embedder_embeds_each_text_once() -> None:
    # Given a memo over the fake model, seeded with one input vector
    inner = HashingEmbedder()
    seeded = inner.embed(["seeded text"], "input").vectors[0]
    memo = MemoEmbedder(inner, {("input", "seeded text"): seeded})
    # When texts are embedded twice, the seeded one among them
    first = memo.embed(["seeded text", "new text"], "input").vectors
    second = memo.embed(["new text"], "input").vectors
    # Then only the new text reached the model, once, and the vectors are the model's
    assert memo.embedded == 1
    assert inner.calls[-1] == (("new text",), "input")
    assert np.allclose(first[1], second[0]) and np.allclose(first[0], seeded)


def test_wait_until_listening_returns_the_url_and_the_printed_key() -> None:
    # Given a process that prints a key, then its listening line, then stays up
    key = "lw_" + "k" * 40
    code = (
        f"import time; print('Created your API key: {key}', flush=True); "
        "print('labelwise listening on http://127.0.0.1:4321  (docs: ...)', flush=True); time.sleep(30)"
    )
    process = _child(code)
    try:
        # When its output is read
        url, found = wait_until_listening(process, timeout_s=30)
    finally:
        process.kill()
        process.wait()
    # Then the URL and the key are the ones it printed
    assert (url, found) == ("http://127.0.0.1:4321", key)


def test_wait_until_listening_reports_an_exit_with_the_output() -> None:
    # Given a process that fails before listening
    process = _child("print('Cannot load the default model'); raise SystemExit(2)")
    # When its output is read, then the error carries what it printed
    with pytest.raises(RuntimeError, match=r"exited:\n.*Cannot load the default model"):
        wait_until_listening(process, timeout_s=30)
    process.wait()
