"""The process's services, built once per cold start from :class:`Settings` (the composition root:
the one place that picks adapters — stores, ONNX/endpoint embedders, image routers, CLIP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import NoReturn

from labelwise.classify.image_models import FewShotRegistry, ImageModel, ImageModels, text_model_for
from labelwise.classify.zeroshot import LabelEmbeddingCache, LabelLimits
from labelwise.embedding.clip import ClipEmbedder, load_clip
from labelwise.embedding.image_factory import image_embedder_factory
from labelwise.embedding.manifest import ModelManifest
from labelwise.embedding.port import ImageEmbedder
from labelwise.embedding.registry import ModelRegistry
from labelwise.endpoint.routing import image_router, routing_factory
from labelwise.errors import UnsupportedInput
from labelwise.images import ImageLoader
from labelwise.quota import MemoryRateLimiter, RateLimiter, UnlimitedRateLimiter
from labelwise.settings import Settings
from labelwise.storage import open_stores
from labelwise.storage.memory import MemoryClassifierStore, MemoryKeyStore
from labelwise.storage.ports import ClassifierStore, KeyStore


@dataclass
class Services:
    settings: Settings
    registry: ModelRegistry
    store: ClassifierStore = field(default_factory=MemoryClassifierStore)
    keys: KeyStore = field(default_factory=MemoryKeyStore)
    label_cache: LabelEmbeddingCache = field(default_factory=LabelEmbeddingCache)
    limiter: RateLimiter = field(default_factory=UnlimitedRateLimiter)
    images: ImageModels = field(default_factory=lambda: ImageModels({}, _no_image_model))

    @cached_property
    def fewshot_registry(self) -> FewShotRegistry:
        """Text models, plus image models as few-shot feature embedders (built once)."""
        return FewShotRegistry(self.registry, self.images)

    def text_model_for(self, requested: str | None) -> str:
        """The text model of a request: the named one, or the text side of a named image model."""
        return text_model_for(self.registry, self.images, requested)

    def warm_up(self) -> None:
        """Load the default model now (cold start), if one is installed."""
        if self.registry.available:
            self.registry.get(None)

    @property
    def label_limits(self) -> LabelLimits:
        return LabelLimits.from_settings(self.settings)


def _no_image_model(*args: object) -> NoReturn:
    raise AssertionError("no image models are configured")


CLIP_ALIASES = ("jina-clip-v1", "jina-clip-v2", "clip-*")


def build_image_models(
    settings: Settings, clip: ClipEmbedder | None = None, loader: ImageLoader | None = None
) -> ImageModels:
    """Image models from ``settings.model_dir`` (and ``clip``, a configured CLIP model), routed
    through the endpoint when one is configured; their inputs decoded by ``loader`` (by default one
    from ``settings``)."""
    source = loader or ImageLoader.from_settings(settings)

    def route(local: ImageEmbedder | None) -> ImageEmbedder:
        router = image_router(settings, local)
        if router is None:
            raise UnsupportedInput(
                "This deployment has no image model in-process and no endpoint for images."
            )
        return router

    def make(manifest: ModelManifest, path: Path) -> ImageModel:
        built = any(path.glob("*.onnx")) or (path / "onnx").is_dir()
        local = image_embedder_factory(path) if built else None
        return ImageModel(manifest=manifest, router=route(local), loader=source)

    models = ImageModels.discover(settings.model_dir, make)
    if clip is not None:
        models.add(ImageModel(manifest=clip.manifest, router=route(clip), loader=source))
    return models


def load_configured_clip(settings: Settings) -> ClipEmbedder | None:
    """The CLIP model ``settings.clip_source`` names (downloaded once), served as ``settings.clip_name``
    with Jina's CLIP model names as aliases; None when none is configured."""
    if not settings.clip_source:
        return None
    clip = load_clip(settings.clip_source, name=settings.clip_name, download_root=settings.cache_dir / "clip")
    aliases = tuple(dict.fromkeys((*clip.manifest.aliases, *CLIP_ALIASES)))
    return clip.served_as(settings.clip_name, aliases)


def build_limiter(settings: Settings) -> RateLimiter:
    """The per-key rate limiter ``settings`` ask for: none, in memory, or DynamoDB (``store=aws``)."""
    rpm, tpm = settings.rate_limit_requests_per_minute, settings.rate_limit_tokens_per_minute
    if not (rpm or tpm):
        return UnlimitedRateLimiter()
    if settings.store == "aws":
        # Imported here so that deployments without AWS never import boto3 (cold start).
        from labelwise.storage.aws_quota import DynamoRateLimiter

        return DynamoRateLimiter.from_settings(settings)
    return MemoryRateLimiter(rpm, tpm)


def build_services(settings: Settings) -> Services:
    """Wire the real adapters: ONNX models from ``settings.model_dir``, the store ``settings.store`` names."""
    store, keys = open_stores(settings)
    registry = ModelRegistry.discover(settings.model_dir, settings.default_model, routing_factory(settings))
    clip = load_configured_clip(settings)
    if clip is not None:
        registry.add(clip)  # its text tower: labels and texts of CLIP requests share its space
    return Services(
        settings=settings,
        registry=registry,
        store=store,
        keys=keys,
        label_cache=LabelEmbeddingCache(settings.label_cache_size),
        limiter=build_limiter(settings),
        images=build_image_models(settings, clip),
    )
