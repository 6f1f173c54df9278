"""Model registry: names, aliases (exact and glob), one embedder per process."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelwise.embedding.manifest import ModelManifest
from labelwise.embedding.port import Embedder
from labelwise.embedding.registry import ModelRegistry
from labelwise.errors import EmbedderUnavailable, ModelNotFound
from tests.support.fakes import HashingEmbedder, fake_manifest
from tests.support.reference import COHERE_EMBED_MODELS, jina_model_names


def write_model(root: Path, manifest: ModelManifest) -> None:
    (root / manifest.name).mkdir(parents=True)
    manifest.save(root / manifest.name)


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    write_model(
        tmp_path, fake_manifest("multilingual-e5-small", ("jina-embeddings-v3", "embed-multilingual-*"))
    )
    write_model(tmp_path, fake_manifest("all-minilm-l6-v2", ("embed-english-*",)))
    return tmp_path


def test_discovers_built_models_and_resolves_aliases(registry_dir: Path) -> None:
    created: list[Path] = []

    def factory(path: Path) -> Embedder:
        created.append(path)
        return HashingEmbedder(ModelManifest.load(path))

    registry = ModelRegistry.discover(registry_dir, "multilingual-e5-small", factory)
    assert registry.available == ["all-minilm-l6-v2", "multilingual-e5-small"]
    assert registry.resolve_name(None) == "multilingual-e5-small"
    assert registry.resolve_name("JINA-embeddings-v3") == "multilingual-e5-small"
    assert registry.resolve_name("embed-multilingual-light-v3.0") == "multilingual-e5-small"
    assert registry.resolve_name("embed-english-v3.0") == "all-minilm-l6-v2"
    # the embedder is created once and reused
    first = registry.get("jina-embeddings-v3")
    assert registry.get("multilingual-e5-small") is first
    assert created == [registry_dir / "multilingual-e5-small"]


def test_unknown_model_names_the_available_ones(registry_dir: Path) -> None:
    registry = ModelRegistry.discover(registry_dir, "multilingual-e5-small")
    with pytest.raises(ModelNotFound) as info:
        registry.get("text-embedding-3-large")
    assert "all-minilm-l6-v2" in info.value.detail and "multilingual-e5-small" in info.value.detail


def test_no_models_built_says_how_to_build(tmp_path: Path) -> None:
    registry = ModelRegistry.discover(tmp_path / "missing", "multilingual-e5-small")
    with pytest.raises(ModelNotFound, match="make model"):
        registry.get(None)


def test_a_model_that_fails_to_load_is_unavailable_not_a_crash(registry_dir: Path) -> None:
    def factory(path: Path) -> Embedder:
        raise OSError("model.onnx: no such file")

    registry = ModelRegistry.discover(registry_dir, "multilingual-e5-small", factory)
    with pytest.raises(EmbedderUnavailable):
        registry.get(None)


@pytest.mark.parametrize("name", [n for n in jina_model_names() if not n.startswith("jina-clip")])
def test_every_jina_text_model_name_resolves_to_a_served_model(registry_dir: Path, name: str) -> None:
    # Given the two bundled text models
    registry = ModelRegistry.discover(registry_dir, "multilingual-e5-small")
    # When a client names one of Jina's text models
    resolved = registry.resolve_name(name)
    # Then a served model answers (English-only names may go to the English model)
    assert resolved in registry.available


@pytest.mark.parametrize("name", COHERE_EMBED_MODELS)
def test_cohere_model_names_resolve(registry_dir: Path, name: str) -> None:
    registry = ModelRegistry.discover(registry_dir, "multilingual-e5-small")
    assert registry.resolve_name(name) in registry.available


def test_the_reference_lists_the_names_the_issue_names() -> None:
    # The guard against an empty parametrisation: the copied reference really holds the names
    names = jina_model_names()
    assert {"jina-embeddings-v4", "jina-embeddings-v5-text-nano", "jina-code-embeddings-1.5b"} <= set(names)
    assert len(names) >= 13
