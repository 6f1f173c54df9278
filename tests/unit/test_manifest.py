"""The model manifest: a strict reader of the JSON the build writes, without pydantic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from labelwise.embedding.manifest import (
    MANIFEST_FILE,
    ImagePreprocessing,
    ManifestError,
    ModelManifest,
    Prefixes,
)


def _text_manifest() -> ModelManifest:
    return ModelManifest(
        name="m",
        family="xlm-roberta",
        dimension=384,
        aliases=("a", "b-*"),
        window=512,
        prefixes=Prefixes(input="query: ", label="query: "),
        cls_token_id=0,
        sep_token_id=2,
        pad_token_id=1,
        temperature=0.012,
        files={"model.onnx": "ab" * 32},
        recipe={"hash": "cd" * 32},
    )


def _image_manifest() -> ModelManifest:
    return ModelManifest(
        name="img",
        family="efficientnet",
        modality="image",
        dimension=384,
        image=ImagePreprocessing(size=224, resize=256, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25)),
        feature_dimension=1280,
        text_model="m",
    )


@pytest.mark.parametrize("manifest", [_text_manifest(), _image_manifest()], ids=["text", "image"])
def test_save_then_load_round_trips(manifest: ModelManifest, tmp_path: Path) -> None:
    # Given a manifest saved beside a model
    manifest.save(tmp_path)
    # When it is read back (and once more through its JSON-ready dict)
    loaded = ModelManifest.load(tmp_path)
    # Then it is equal, with tuples and nested objects restored
    assert loaded == manifest
    assert ModelManifest.from_dict(json.loads(json.dumps(loaded.to_dict()))) == manifest
    assert isinstance(loaded.aliases, tuple)
    if manifest.image is not None:
        assert loaded.image == manifest.image and isinstance(loaded.image.mean, tuple)


def test_defaults_fill_fields_older_manifests_lack() -> None:
    # Given a minimal text manifest, as older builds wrote
    m = ModelManifest.from_dict({"name": "t", "family": "bert", "dimension": 4})
    # Then every other field has its documented default
    assert (m.modality, m.image, m.prefixes, m.max_input_tokens, m.optimized_for) == (
        "text",
        None,
        Prefixes(),
        8192,
        "",
    )


def test_unknown_keys_are_ignored_so_newer_manifests_still_load() -> None:
    m = ModelManifest.from_dict({"name": "t", "family": "bert", "dimension": 4, "added_later": [1, 2]})
    assert m.name == "t"


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"family": "gpt"}, "ModelManifest.family"),
        ({"dimension": "384"}, "ModelManifest.dimension"),
        ({"dimension": True}, "ModelManifest.dimension"),
        ({"temperature": "hot"}, "ModelManifest.temperature"),
        ({"aliases": "e5"}, "ModelManifest.aliases"),
        ({"aliases": ["e5", 3]}, "ModelManifest.aliases[1]"),
        ({"prefixes": {"input": 1}}, "ModelManifest.prefixes.input"),
        ({"image": {"mean": [0.5, 0.5]}}, "ModelManifest.image.mean"),
        ({"image": {"interpolation": "nearest"}}, "ModelManifest.image.interpolation"),
        ({"files": {"model.onnx": 12}}, "ModelManifest.files['model.onnx']"),
        ({"normalized": "yes"}, "ModelManifest.normalized"),
    ],
)
def test_wrong_types_and_values_are_rejected_naming_the_field(change: dict[str, Any], where: str) -> None:
    # Given a manifest with one bad field
    data = {"name": "t", "family": "bert", "dimension": 4, **change}
    # When it is read
    with pytest.raises(ManifestError) as err:
        ModelManifest.from_dict(data)
    # Then the error names the field (and is a ValueError, which loaders already handle)
    assert where in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("missing", ["name", "family", "dimension"])
def test_required_fields_must_be_present(missing: str) -> None:
    data = {"name": "t", "family": "bert", "dimension": 4}
    del data[missing]
    with pytest.raises(ManifestError, match=rf"ModelManifest\.{missing}: missing"):
        ModelManifest.from_dict(data)


def test_a_file_that_is_not_json_is_a_manifest_error(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ManifestError, match="not JSON"):
        ModelManifest.load(tmp_path)


def test_manifests_built_in_code_are_checked_too() -> None:
    with pytest.raises(ManifestError, match=r"ModelManifest\.dimension"):
        ModelManifest(name="t", family="bert", dimension="4")  # type: ignore[arg-type]
    with pytest.raises(ManifestError, match=r"ModelManifest\.family"):
        ModelManifest(name="t", family="gpt", dimension=4)  # type: ignore[arg-type]


def test_replace_returns_a_checked_copy_and_leaves_the_original() -> None:
    # Given a manifest
    m = _text_manifest()
    # When a copy changes one field
    c = m.replace(dimension=1280, aliases=("x",))
    # Then only the copy changed, and a bad change is refused
    assert (c.dimension, c.aliases, m.dimension, m.aliases) == (1280, ("x",), 384, ("a", "b-*"))
    with pytest.raises(ManifestError):
        m.replace(window="big")


def test_the_embedder_import_path_does_not_import_pydantic() -> None:
    # Given a fresh interpreter
    code = (
        "import sys; from labelwise.embedding.onnx_embedder import OnnxEmbedder; "
        "print('pydantic' in sys.modules)"
    )
    # When it imports the embedder (what a cold start pays before the first answer)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # Then pydantic (about a fifth of the cold start, docs/performance.md) was not imported
    assert out.stdout.strip() == "False"
