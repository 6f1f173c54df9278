"""Image inputs: which image model answers, and the adapters the classification logic uses.

Zero-shot images share the label space of a text model: the bundled ``efficientnet-lite0`` projects
an image into multilingual-e5-small's space through its ImageNet class probabilities (ConSE; a
labelled fallback, weak off ImageNet's domain: docs/images.md), so labels and any text inputs of
the same request are embedded by e5. Few-shot image classifiers learn on the image model's pooled
features (1280-d) instead; :class:`ImageFeatureEmbedder` presents those as an ``Embedder`` whose
"texts" are image references (URL or base64), so the few-shot logic needs no image code. Images
are embedded in-process or by the SageMaker endpoint, as :mod:`labelwise.endpoint.routing` decides
(the routers are wired by :func:`labelwise.runtime.build_image_models`). Image inputs are fetched
and decoded by an :class:`ImageSource` (:class:`labelwise.images.ImageLoader`).
"""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from labelwise.embedding.budget import check_deadline
from labelwise.embedding.manifest import MANIFEST_FILE, ModelManifest
from labelwise.embedding.pixels import IMAGE_TOKENS
from labelwise.embedding.port import (
    Embedder,
    EmbeddingBatch,
    ImageEmbedder,
    ImageVectors,
    Role,
    Truncate,
    image_matrix,
)
from labelwise.errors import ModelNotFound, UnsupportedInput
from labelwise.request_context import record_tokens

Pixels = npt.NDArray[np.uint8]


class ImageSource(Protocol):
    """Where a request's images come from: references (URL or base64) fetched, size-checked and
    decoded a bounded chunk at a time (:class:`labelwise.images.ImageLoader`)."""

    def chunks(self, values: Sequence[str], indices: Sequence[int]) -> Iterator[list[Pixels]]: ...


class TextModels(Protocol):
    """The text models (:class:`labelwise.embedding.registry.ModelRegistry`)."""

    @property
    def default_model(self) -> str: ...

    def resolve_name(self, requested: str | None) -> str: ...

    def get(self, requested: str | None) -> Embedder: ...


@dataclass(frozen=True)
class ImageModel:
    """One image model and how to reach it: ``router`` embeds decoded images (in-process or on the
    endpoint), ``loader`` decodes the references."""

    manifest: ModelManifest
    router: ImageEmbedder
    loader: ImageSource

    @property
    def name(self) -> str:
        return self.manifest.name

    def _embed(
        self,
        embed: Callable[[Sequence[Pixels]], ImageVectors],
        references: Sequence[str],
        indices: Sequence[int] | None,
    ) -> np.ndarray:
        """``embed`` (a method of the router) over the decoded images, one bounded chunk at a time (the loader
        fetches and size-checks every image first, then decodes a chunk only when the previous one
        is embedded and dropped). Each chunk's images are metered as they are embedded, so work done
        before a later image fails is still charged. The request's deadline is checked before each
        chunk."""
        where = list(indices) if indices is not None else list(range(len(references)))
        parts: list[np.ndarray] = []
        for chunk in self.loader.chunks(references, where):
            check_deadline()  # a request past its budget stops between chunks (504)
            vectors = embed(chunk)
            parts.append(image_matrix(vectors))
            record_tokens(IMAGE_TOKENS * len(chunk))
            del chunk, vectors
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def zero_shot_vectors(
        self, references: Sequence[str], indices: Sequence[int] | None = None
    ) -> np.ndarray:
        """Vectors in the text model's space (in-process or the endpoint); metered."""
        return self._embed(self.router.zero_shot_vectors, references, indices)

    def features(self, references: Sequence[str], indices: Sequence[int] | None = None) -> np.ndarray:
        """Few-shot features (in-process or the endpoint); metered."""
        return self._embed(self.router.features, references, indices)


class ImageFeatureEmbedder:
    """An ``Embedder`` over image references for few-shot learning: ``embed`` returns the image
    model's features; label rows get no text prior (zero vectors) in this space."""

    def __init__(self, model: ImageModel) -> None:
        self._model = model
        self._manifest = model.manifest.replace(dimension=model.manifest.feature_dimension)

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    def count_tokens(self, texts: Sequence[str], role: Role) -> list[int]:
        return [IMAGE_TOKENS] * len(texts)

    def embed(self, texts: Sequence[str], role: Role, truncate: Truncate = "pool") -> EmbeddingBatch:
        n, dim = len(texts), self._manifest.dimension
        if role == "label" or n == 0:
            return EmbeddingBatch(np.zeros((n, dim), np.float32), [0] * n, [False] * n)
        return EmbeddingBatch(self._model.features(texts), [IMAGE_TOKENS] * n, [False] * n)


class ImageModels:
    """The image models a deployment has: built ones in ``model_dir`` (in-process), or the
    endpoint's (its router sends images there). Lazily created, once per process."""

    def __init__(
        self,
        manifests: dict[str, tuple[ModelManifest, Path]],
        make_model: Callable[[ModelManifest, Path], ImageModel],
    ) -> None:
        self._manifests = manifests
        self._make = make_model
        self._models: dict[str, ImageModel] = {}
        self._lock = threading.Lock()

    @classmethod
    def discover(
        cls, model_dir: Path, make_model: Callable[[ModelManifest, Path], ImageModel]
    ) -> ImageModels:
        manifests: dict[str, tuple[ModelManifest, Path]] = {}
        if model_dir.is_dir():
            for path in sorted(model_dir.glob(f"*/{MANIFEST_FILE}")):
                if path.parent.name.startswith("."):
                    continue
                manifest = ModelManifest.load(path.parent)
                if manifest.modality == "image":
                    manifests[manifest.name] = (manifest, path.parent)
        return cls(manifests, make_model)

    @property
    def available(self) -> list[str]:
        return sorted(self._manifests)

    def matches(self, requested: str | None) -> str | None:
        """The image model ``requested`` names (name, alias or alias glob), else None.

        A CLIP model, when configured, wins the aliases it shares with the bundled fallback
        (``jina-clip-v1``/``-v2``)."""
        if not requested:
            return None
        wanted = requested.strip().lower()
        ordered = sorted(self._manifests.items(), key=lambda kv: kv[1][0].family != "clip")
        for name, (manifest, _) in ordered:
            names = [name, *manifest.aliases]
            if any(wanted == n.lower() or fnmatch.fnmatchcase(wanted, n.lower()) for n in names):
                return name
        return None

    def for_text_model(self, text_model: str) -> str | None:
        """An image model that shares ``text_model``'s space (CLIP first)."""
        ordered = sorted(self._manifests.items(), key=lambda kv: kv[1][0].family != "clip")
        for name, (manifest, _) in ordered:
            if manifest.text_model == text_model:
                return name
        return None

    def manifest(self, name: str) -> ModelManifest:
        return self._manifests[name][0]

    def add(self, model: ImageModel) -> None:
        """Serve an already-built model (a configured CLIP model)."""
        self._manifests[model.name] = (model.manifest, Path())
        self._models[model.name] = model

    def get(self, name: str) -> ImageModel:
        model = self._models.get(name)
        if model is None:
            with self._lock:
                model = self._models.get(name)
                if model is None:
                    manifest, path = self._manifests[name]
                    model = self._make(manifest, path)
                    self._models[name] = model
        return model

    def require(self, requested: str | None, text_model: str) -> ImageModel:
        """The image model for a request whose inputs include images."""
        name = self.matches(requested) if requested else None
        name = name or self.for_text_model(text_model)
        if name is None:
            if not self._manifests:
                raise UnsupportedInput(
                    "This deployment has no image model: build it with `make model` (locally) or enable "
                    "the SageMaker endpoint (AWS)."
                )
            raise ModelNotFound(
                f"Model '{requested or text_model}' cannot embed images. "
                f"Image models: {', '.join(self.available)}."
            )
        return self.get(name)


def text_model_for(registry: TextModels, images: ImageModels, requested: str | None) -> str:
    """The text model of a request: the named one, or the text side of a named image model."""
    image = images.matches(requested)
    if image is not None:
        return images.manifest(image).text_model or registry.default_model
    return registry.resolve_name(requested)


class FewShotRegistry:
    """The registry few-shot logic sees: text models, plus image models as feature embedders."""

    def __init__(self, text: TextModels, images: ImageModels) -> None:
        self._text = text
        self._images = images
        self._features: dict[str, ImageFeatureEmbedder] = {}

    @property
    def text(self) -> TextModels:
        """The text models."""
        return self._text

    @property
    def images(self) -> ImageModels:
        return self._images

    def resolve_name(self, requested: str | None) -> str:
        image = self._images.matches(requested)
        return image if image is not None else self._text.resolve_name(requested)

    def get(self, requested: str | None) -> Embedder:
        image = self._images.matches(requested)
        if image is None:
            text_embedder: Embedder = self._text.get(requested)
            return text_embedder
        if image not in self._features:
            self._features[image] = ImageFeatureEmbedder(self._images.get(image))
        return self._features[image]
