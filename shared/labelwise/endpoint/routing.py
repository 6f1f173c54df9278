"""Where embeddings are computed: in-process, or on the embedding endpoint.

:class:`RoutingEmbedder` sends images, and text batches larger than
``Settings.endpoint_batch_threshold``, to the endpoint when one is configured
(``Settings.sagemaker_endpoint_name`` or ``Settings.endpoint_url``); everything else runs
in-process. When the endpoint fails, ``Settings.endpoint_fallback`` decides: ``local`` embeds
in-process instead, ``fail`` raises :class:`labelwise.errors.EmbedderUnavailable` (503).

Each choice is logged and recorded for the current request with
:func:`labelwise.request_context.note_backend`; the HTTP layer reads it from its request scope and
sends it as ``x-labelwise-backend`` (:data:`labelwise.request_context.BACKEND_HEADER`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from labelwise.embedding.manifest import ModelManifest
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.embedding.port import Embedder, EmbeddingBatch, ImageEmbedder, Role, Truncate, image_matrix
from labelwise.endpoint.client import (
    EndpointEmbedder,
    HttpTransport,
    ImageInput,
    SageMakerTransport,
    Transport,
)
from labelwise.errors import EmbedderUnavailable, UnsupportedInput
from labelwise.request_context import Backend, note_backend
from labelwise.settings import Settings

logger = logging.getLogger(__name__)


def _note(backend: Backend, what: str, count: int, model: str, reason: str) -> None:
    note_backend(backend)
    log = logger.warning if backend == "fallback" else logger.info
    log(
        "embedding %d %s with %s on %s (%s)",
        count,
        what,
        model,
        backend,
        reason,
        extra={"backend": backend, "kind": what, "count": count, "model": model},
    )


class RoutingEmbedder:
    """Implements :class:`labelwise.embedding.port.Embedder` (and the image methods) by choosing,
    per call, the in-process embedder or the endpoint."""

    def __init__(
        self,
        local: Embedder,
        remote: EndpointEmbedder | None,
        *,
        threshold: int,
        fallback: Literal["local", "fail"] = "local",
        local_images: ImageEmbedder | None = None,
    ) -> None:
        self.local = local
        self.remote = remote
        self.threshold = threshold
        self.fallback = fallback
        self.local_images = local_images

    @property
    def manifest(self) -> ModelManifest:
        return self.local.manifest

    def count_tokens(self, texts: Sequence[str], role: Role) -> list[int]:
        return self.local.count_tokens(texts, role)  # the tokenizer alone: always in-process

    def route_texts(self, count: int) -> Backend:
        """Where a batch of ``count`` texts goes (before any failure)."""
        return "endpoint" if self.remote is not None and count > self.threshold else "local"

    def embed(self, texts: Sequence[str], role: Role, truncate: Truncate = "pool") -> EmbeddingBatch:
        model = self.manifest.name
        if self.route_texts(len(texts)) == "local":
            reason = "no endpoint configured" if self.remote is None else f"batch <= {self.threshold}"
            _note("local", "texts", len(texts), model, reason)
            return self.local.embed(texts, role, truncate)
        assert self.remote is not None
        try:
            batch = self.remote.embed(texts, role, truncate)
        except EmbedderUnavailable as exc:
            if self.fallback != "local":
                _note("endpoint", "texts", len(texts), model, f"endpoint failed, no fallback: {exc.detail}")
                raise
            _note("fallback", "texts", len(texts), model, f"endpoint failed: {exc.detail}")
            return self.local.embed(texts, role, truncate)
        _note("endpoint", "texts", len(texts), model, f"batch > {self.threshold}")
        return batch

    # ------------------------------------------------------------------------------- images
    def zero_shot_vectors(self, images: Sequence[ImageInput]) -> npt.NDArray[np.float32]:
        return self._images(images, "zero_shot_vectors")

    def features(self, images: Sequence[ImageInput]) -> npt.NDArray[np.float32]:
        return self._images(images, "features")

    def _run_local_images(self, method: str, images: Sequence[ImageInput]) -> npt.NDArray[np.float32]:
        if self.local_images is None:
            raise UnsupportedInput(
                "This deployment has no image model in-process and no endpoint for images."
            )
        return image_matrix(getattr(self.local_images, method)(images))

    def _images(self, images: Sequence[ImageInput], method: str) -> npt.NDArray[np.float32]:
        model = self.remote.image_model if self.remote is not None and self.remote.image_model else "image"
        if self.remote is None:
            _note("local", "images", len(images), model, "no endpoint configured")
            return self._run_local_images(method, images)
        try:
            vectors: npt.NDArray[np.float32] = getattr(self.remote, method)(images)
        except EmbedderUnavailable as exc:
            if self.fallback != "local" or self.local_images is None:
                _note("endpoint", "images", len(images), model, f"endpoint failed, no fallback: {exc.detail}")
                raise
            _note("fallback", "images", len(images), model, f"endpoint failed: {exc.detail}")
            return self._run_local_images(method, images)
        _note("endpoint", "images", len(images), model, "images go to the endpoint")
        return vectors


# ---------------------------------------------------------------------------------------- wiring
def endpoint_transport(settings: Settings, session: Any = None) -> Transport | None:
    """The transport Settings configure: SageMaker by name, else an HTTP URL, else None (in-process)."""
    if settings.sagemaker_endpoint_name:
        return SageMakerTransport.create(
            settings.sagemaker_endpoint_name,
            timeout_s=settings.endpoint_timeout_s,
            endpoint_url=settings.aws_endpoint_url,
            session=session,
        )
    if settings.endpoint_url:
        return HttpTransport(settings.endpoint_url, timeout_s=settings.endpoint_timeout_s)
    return None


def routing_factory(
    settings: Settings,
    local_factory: Callable[[Path], Embedder] | None = None,
    transport: Transport | None = None,
) -> Callable[[Path], Embedder]:
    """An :data:`labelwise.embedding.registry.EmbedderFactory` whose embedders route per Settings::

        ModelRegistry.discover(settings.model_dir, settings.default_model, routing_factory(settings))

    Without an endpoint configured it returns the plain local embedders (nothing changes).
    """
    remote_transport = transport if transport is not None else endpoint_transport(settings)

    def default_local(model_dir: Path) -> Embedder:
        return OnnxEmbedder.from_dir(model_dir)

    make_local = local_factory or default_local

    def factory(model_dir: Path) -> Embedder:
        local = make_local(model_dir)
        if remote_transport is None:
            return local
        remote = EndpointEmbedder(remote_transport, manifest=local.manifest)
        return RoutingEmbedder(
            local, remote, threshold=settings.endpoint_batch_threshold, fallback=settings.endpoint_fallback
        )

    return factory


def image_router(
    settings: Settings, local_images: ImageEmbedder | None, transport: Transport | None = None
) -> RoutingEmbedder | None:
    """Routing for images only (``zero_shot_vectors`` / ``features``): the endpoint when configured,
    else ``local_images``; None when neither exists."""
    remote_transport = transport if transport is not None else endpoint_transport(settings)
    if remote_transport is None and local_images is None:
        return None
    remote = EndpointEmbedder(remote_transport) if remote_transport is not None else None
    return RoutingEmbedder(
        _NoTexts(),
        remote,
        threshold=settings.endpoint_batch_threshold,
        fallback=settings.endpoint_fallback,
        local_images=local_images,
    )


class _NoTexts:
    """Placeholder text side of an image-only router."""

    @property
    def manifest(self) -> ModelManifest:
        raise UnsupportedInput("This router embeds images only.")

    def embed(self, texts: Sequence[str], role: Role, truncate: Truncate = "pool") -> EmbeddingBatch:
        raise UnsupportedInput("This router embeds images only.")

    def count_tokens(self, texts: Sequence[str], role: Role) -> list[int]:
        raise UnsupportedInput("This router embeds images only.")
