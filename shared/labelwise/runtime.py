"""The process's services, built once per cold start from :class:`Settings` (the composition root:
the one place that picks adapters — stores, ONNX/endpoint embedders, image routers, CLIP)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NoReturn

from labelwise.classify.images import FewShotRegistry, ImageModel, ImageModels, text_model_for
from labelwise.classify.zeroshot import LabelEmbeddingCache, LabelLimits
from labelwise.embedding.manifest import ModelManifest
from labelwise.embedding.registry import ModelRegistry
from labelwise.quota import MemoryRateLimiter, RateLimiter, UnlimitedRateLimiter
from labelwise.settings import Settings
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


def build_image_models(settings: Any, clip: Any | None = None) -> tuple[ImageModels, Any]:
    """Image models from ``settings.model_dir`` (and ``clip``, a configured ClipEmbedder), routed
    through the endpoint when one is configured."""
    from labelwise.embedding.image import image_embedder_factory
    from labelwise.endpoint.routing import image_router
    from labelwise.images import ImageLoader

    loader = ImageLoader.from_settings(settings)

    def make(manifest: ModelManifest, path: Path) -> ImageModel:
        local = image_embedder_factory(path) if any(path.glob("*.onnx")) or (path / "onnx").is_dir() else None
        return ImageModel(manifest=manifest, router=image_router(settings, local), loader=loader)

    models = ImageModels.discover(settings.model_dir, make)
    if clip is not None:
        models.add(ImageModel(manifest=clip.manifest, router=image_router(settings, clip), loader=loader))
    return models, loader


def load_configured_clip(settings: Any) -> Any | None:
    """The CLIP model ``settings.clip_source`` names (downloaded once), served as ``settings.clip_name``
    with Jina's CLIP model names as aliases; None when none is configured."""
    if not settings.clip_source:
        return None
    from labelwise.embedding.clip import load_clip

    clip = load_clip(settings.clip_source, name=settings.clip_name, download_root=settings.cache_dir / "clip")
    aliases = tuple(dict.fromkeys((*clip.manifest.aliases, *CLIP_ALIASES)))
    clip._manifest = clip.manifest.replace(
        name=settings.clip_name, aliases=aliases, text_model=settings.clip_name
    )
    return clip


def build_services(settings: Settings) -> Services:
    """Wire the real adapters: ONNX models from ``settings.model_dir``, the store ``settings.store`` names."""
    from labelwise.endpoint.routing import routing_factory
    from labelwise.storage import open_stores

    store, keys = open_stores(settings)
    registry = ModelRegistry.discover(settings.model_dir, settings.default_model, routing_factory(settings))
    clip = load_configured_clip(settings)
    if clip is not None:
        registry.add(clip)  # its text tower: labels and texts of CLIP requests share its space
    rpm, tpm = settings.rate_limit_requests_per_minute, settings.rate_limit_tokens_per_minute
    limiter: RateLimiter
    if not (rpm or tpm):
        limiter = UnlimitedRateLimiter()
    elif settings.store == "aws":
        from labelwise.storage.aws_quota import DynamoRateLimiter

        limiter = DynamoRateLimiter.from_settings(settings)
    else:
        limiter = MemoryRateLimiter(rpm, tpm)
    return Services(
        settings=settings,
        registry=registry,
        store=store,
        keys=keys,
        label_cache=LabelEmbeddingCache(settings.label_cache_size),
        limiter=limiter,
        images=build_image_models(settings, clip)[0],
    )
