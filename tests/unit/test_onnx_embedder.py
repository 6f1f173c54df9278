"""Unit tests of OnnxEmbedder on a tiny random-weight model with a word-level tokenizer
(one word = one token; window 8 = 6 content tokens + [CLS]/[SEP]; max_input_tokens 20).

The arithmetic tests use the float graph: dynamic int8 quantisation picks one activation scale per
batch tensor, so int8 vectors move slightly (cosine > 0.999) with what else is in the batch."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")

from labelwise.embedding.manifest import ModelManifest, Prefixes
from labelwise.embedding.onnx_embedder import OnnxEmbedder, is_pre_optimised, max_content_tokens, tokens_read
from labelwise.errors import EmbedderUnavailable, RequestTimeout
from labelwise.request_context import request_deadline
from tests.support.tiny import CLS_ID, SEP_ID, WORDS, write_tiny_model


def words(n: int, start: int = 0) -> str:
    return " ".join(WORDS[(start + i) % 40] for i in range(n))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tiny")
    write_tiny_model(
        d,
        window=8,
        max_input_tokens=20,
        prefixes=Prefixes(input="query: ", label="passage: "),
        quantize=False,
    )
    return d


@pytest.fixture(scope="module")
def int8_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("tiny-int8")
    write_tiny_model(d, window=8, max_input_tokens=20)
    return d


@pytest.fixture(scope="module")
def emb(model_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder.from_dir(model_dir, intra_op_threads=1, batch_size=4)


def _raw(emb: OnnxEmbedder, ids: list[int]) -> np.ndarray:
    arr = np.array([ids], np.int64)
    return emb._session.run(None, {"input_ids": arr, "attention_mask": np.ones_like(arr)})[0][0]


def test_window_arithmetic() -> None:
    assert max_content_tokens(20, 8) == 14  # 6 + 6 + (4 - 2)
    assert tokens_read(14, 8) == 20
    assert tokens_read(0, 8) == 2
    assert tokens_read(6, 8) == 8 and tokens_read(7, 8) == 11


def test_short_text_is_one_window_with_prefix_and_specials(emb: OnnxEmbedder) -> None:
    # Given a 3-word text and the input prefix "query: " (one token)
    # When embedded
    out = emb.embed([words(3)], "input")
    # Then 1 prefix + 3 content + 2 specials were read, and the vector is the model's output
    assert out.token_counts == [6] and out.truncated == [False]
    ids = [CLS_ID, *emb._tokenizer.encode("query: " + words(3), add_special_tokens=False).ids, SEP_ID]
    np.testing.assert_allclose(out.vectors[0], _raw(emb, ids), atol=1e-6)


def test_long_text_is_split_into_windows_and_weighted(emb: OnnxEmbedder) -> None:
    # Given a text of 1 prefix + 10 words = 11 content tokens (windows of 6 + 5)
    text = words(10)
    content = emb._tokenizer.encode("query: " + text, add_special_tokens=False).ids
    assert len(content) == 11
    # When embedded
    out = emb.embed([text], "input")
    # Then the count includes both windows' specials, and the vector is the 6:5 weighted mean, renormalised
    assert out.token_counts == [15] and out.truncated == [False]
    v = 6 * _raw(emb, [CLS_ID, *content[:6], SEP_ID]) + 5 * _raw(emb, [CLS_ID, *content[6:], SEP_ID])
    np.testing.assert_allclose(out.vectors[0], v / np.linalg.norm(v), atol=1e-5)


def test_over_long_text_is_truncated_and_flagged(emb: OnnxEmbedder) -> None:
    # Given a text longer than max_input_tokens (20)
    long, short = words(30), words(13)
    # When embedded
    out = emb.embed([long, short], "input")
    # Then it reads exactly 20 tokens, is flagged, and equals the embedding of its first 14 content tokens
    assert out.token_counts == [20, 20]
    assert out.truncated == [True, False]
    np.testing.assert_allclose(out.vectors[0], out.vectors[1], atol=1e-6)


def test_count_tokens_matches_embed_and_role_prefix(emb: OnnxEmbedder) -> None:
    texts = ["", words(1), words(6), words(7), words(40)]
    assert emb.count_tokens(texts, "input") == emb.embed(texts, "input").token_counts
    # "passage: " is also one token here, "query: " too: same counts, different vectors
    assert emb.count_tokens(texts, "label") == emb.count_tokens(texts, "input")
    assert not np.allclose(emb.embed([words(2)], "label").vectors, emb.embed([words(2)], "input").vectors)


def test_empty_request_returns_zero_rows(emb: OnnxEmbedder) -> None:
    out = emb.embed([], "input")
    assert out.vectors.shape == (0, 64) and out.vectors.dtype == np.float32
    assert out.token_counts == [] and out.truncated == []


def test_order_batching_and_determinism(model_dir: Path, emb: OnnxEmbedder) -> None:
    # Given texts of mixed lengths (sorted internally by window length)
    texts = [words(n, start=n) for n in (9, 1, 25, 3, 0, 6, 14, 2)]
    before = list(texts)
    # When embedded with different batch sizes, one by one, and twice
    a = emb.embed(texts, "input")
    b = OnnxEmbedder.from_dir(model_dir, intra_op_threads=1, batch_size=1).embed(tuple(texts), "input")
    singles = np.stack([emb.embed([t], "input").vectors[0] for t in texts])
    # Then rows stay in request order, independent of batching, deterministic; inputs are untouched
    np.testing.assert_allclose(a.vectors, singles, atol=1e-5)
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)
    np.testing.assert_array_equal(a.vectors, emb.embed(texts, "input").vectors)
    assert a.token_counts == b.token_counts
    assert texts == before
    np.testing.assert_allclose(np.linalg.norm(a.vectors, axis=1), 1.0, atol=1e-5)


def test_int8_model_is_nearly_batch_invariant(int8_dir: Path) -> None:
    # Given the quantised tiny model
    emb = OnnxEmbedder.from_dir(int8_dir, intra_op_threads=1)
    texts = [words(n, start=n) for n in (9, 1, 25, 3, 0, 6, 14, 2)]
    # When texts are embedded together and one by one
    together = emb.embed(texts, "input").vectors
    alone = np.stack([emb.embed([t], "input").vectors[0] for t in texts])
    # Then the vectors agree to a high cosine, and repeated calls are bit-identical
    assert (together * alone).sum(1).min() > 0.999
    np.testing.assert_array_equal(together, emb.embed(texts, "input").vectors)


def test_concurrent_calls_agree_with_sequential(emb: OnnxEmbedder) -> None:
    jobs = [[words(n, start=k) for n in (3, 9, 15)] for k in range(8)]
    expected = [emb.embed(j, "input").vectors for j in jobs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda j: emb.embed(j, "input").vectors, jobs))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, atol=1e-6)


def test_runtime_failure_is_wrapped(emb: OnnxEmbedder) -> None:
    class Broken:
        def run(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("boom")

    broken = OnnxEmbedder(Broken(), emb._tokenizer, emb.manifest)
    with pytest.raises(EmbedderUnavailable) as info:
        broken.embed(["w1"], "input")
    assert isinstance(info.value.__cause__, RuntimeError)


def test_missing_model_dir_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable):
        OnnxEmbedder.from_dir(tmp_path / "nope")


def test_runtime_module_does_not_import_onnx_or_modelbuild() -> None:
    import subprocess
    import sys

    code = (
        "import sys, labelwise.embedding.onnx_embedder; "
        "bad = [m for m in sys.modules if m == 'onnx' or m.startswith('labelwise.modelbuild')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_truncate_end_keeps_the_first_window(emb: OnnxEmbedder) -> None:
    # Given a text of 1 prefix + 10 words (two windows' worth)
    text = words(10)
    content = emb._tokenizer.encode("query: " + text, add_special_tokens=False).ids
    # When embedded with truncate="end"
    out = emb.embed([text, words(2)], "input", truncate="end")
    # Then only the first window (prefix + 5 words) is read, flagged truncated; short texts untouched
    assert out.truncated == [True, False] and out.token_counts == [8, 5]
    v = _raw(emb, [CLS_ID, *content[:6], SEP_ID])
    np.testing.assert_allclose(out.vectors[0], v / np.linalg.norm(v), atol=1e-5)


def test_truncate_start_keeps_the_prefix_and_the_end(emb: OnnxEmbedder) -> None:
    text = words(10)
    content = emb._tokenizer.encode("query: " + text, add_special_tokens=False).ids
    out = emb.embed([text], "input", truncate="start")
    assert out.truncated == [True] and out.token_counts == [8]
    v = _raw(emb, [CLS_ID, content[0], *content[-5:], SEP_ID])
    np.testing.assert_allclose(out.vectors[0], v / np.linalg.norm(v), atol=1e-5)


def test_truncate_none_refuses_long_texts_only(emb: OnnxEmbedder) -> None:
    from labelwise.errors import InputTooLong

    assert emb.embed([words(5)], "input", truncate="none").truncated == [False]
    with pytest.raises(InputTooLong, match="Input 1 is too long"):
        emb.embed([words(2), words(6)], "input", truncate="none")


@pytest.mark.parametrize(
    ("optimized_for", "model_file", "expected"),
    [
        ("onnxruntime-1.31.1", "model.onnx", True),  # the shipped graph, saved by this onnxruntime
        ("onnxruntime-1.30.0", "model.onnx", False),  # saved by another onnxruntime: optimise at load
        ("", "model.onnx", False),  # never pre-optimised
        ("onnxruntime-1.31.1", "model.float.onnx", False),  # another graph (the float baseline)
        ("onnxruntime-1.31.1", "/elsewhere/model.float.onnx", False),
    ],
)
def test_only_the_graph_the_build_optimised_skips_optimisation(
    tmp_path: Path, optimized_for: str, model_file: str, expected: bool
) -> None:
    # Given a manifest that records which onnxruntime optimised model.onnx
    m = ModelManifest(name="t", family="bert", dimension=4, optimized_for=optimized_for)
    # When a session is opened on some graph file of that directory (or elsewhere)
    # Then optimisation is skipped only for model.onnx under the same onnxruntime
    assert is_pre_optimised(m, tmp_path, model_file, "1.31.1") is expected


def test_sessions_flush_denormals_to_zero(model_dir: Path) -> None:
    # Given an embedder opened the way the runtime opens it
    emb = OnnxEmbedder.from_dir(model_dir, intra_op_threads=1)
    # Then its session flushes denormals (the masked softmax is several times slower without it)
    opts = emb._session.get_session_options()
    assert opts.get_session_config_entry("session.set_denormal_as_zero") == "1"


class SlowSession:
    """Delegates to an onnxruntime session, taking ``seconds`` per call and counting the calls."""

    def __init__(self, inner: object, seconds: float) -> None:
        self.inner = inner
        self.seconds = seconds
        self.runs = 0

    def run(self, *args: object, **kwargs: object) -> object:
        self.runs += 1
        time.sleep(self.seconds)
        return self.inner.run(*args, **kwargs)  # type: ignore[attr-defined]


def test_embedding_stops_between_calls_once_the_request_is_past_its_budget(model_dir: Path) -> None:
    # Given an embedder making one onnxruntime call per window, each taking 30 ms
    real = OnnxEmbedder.from_dir(model_dir, intra_op_threads=1, batch_size=1)
    slow = SlowSession(real._session, 0.03)
    emb = OnnxEmbedder(slow, real._tokenizer, real.manifest, batch_size=1)
    texts = [words(3, i) for i in range(20)]
    # When 20 one-window texts are embedded inside a request with a 0.1 s budget
    with request_deadline(0.1), pytest.raises(RequestTimeout, match="S3 uploads"):
        emb.embed(texts, "input")
    # Then it stopped at the budget, between calls: a few calls, not 20
    assert 2 <= slow.runs <= 6
    # And outside a request's budget the same texts are embedded in full
    slow.runs = 0
    assert emb.embed(texts, "input").vectors.shape[0] == 20 and slow.runs == 20
