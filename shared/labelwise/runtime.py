"""The process's services, built once per cold start from :class:`Settings`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import NoReturn

from labelwise.classify.images import FewShotRegistry, ImageModels
from labelwise.classify.zeroshot import LabelEmbeddingCache, LabelLimits
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
        image = self.images.matches(requested)
        if image is not None:
            return self.images.manifest(image).text_model or self.registry.default_model
        return self.registry.resolve_name(requested)

    def warm_up(self) -> None:
        """Load the default model now (cold start), if one is installed."""
        if self.registry.available:
            self.registry.get(None)

    @property
    def label_limits(self) -> LabelLimits:
        s = self.settings
        return LabelLimits(
            max_labels=s.max_labels,
            max_groups=s.max_label_groups,
            max_group_labels=s.max_labels_per_group,
            max_label_chars=s.max_label_chars,
        )


def _no_image_model(*args: object) -> NoReturn:
    raise AssertionError("no image models are configured")


def build_services(settings: Settings) -> Services:
    """Wire the real adapters: ONNX models from ``settings.model_dir``, the store ``settings.store`` names."""
    from labelwise.classify.images import build_image_models, load_configured_clip
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
