"""The runtime object for an image model directory, by its manifest's family."""

from __future__ import annotations

from pathlib import Path

from labelwise.embedding.clip.embedder import ClipEmbedder
from labelwise.embedding.efficientnet import EfficientNetEmbedder
from labelwise.embedding.manifest import ModelManifest


def image_embedder_factory(model_dir: Path) -> EfficientNetEmbedder | ClipEmbedder:
    """:class:`~labelwise.embedding.clip.embedder.ClipEmbedder` for ``family == "clip"``, else the
    bundled :class:`~labelwise.embedding.efficientnet.EfficientNetEmbedder`."""
    manifest = ModelManifest.load(model_dir)
    if manifest.family == "clip":
        return ClipEmbedder.from_dir(model_dir)
    return EfficientNetEmbedder.from_dir(model_dir)
