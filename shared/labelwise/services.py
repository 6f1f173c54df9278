"""The process's services: what the interface (:mod:`labelwise.api`) and the upload jobs
(:mod:`labelwise.uploads`) use, built once per cold start by the composition root
(:func:`labelwise.runtime.build_services`) or by tests with fakes."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import NoReturn

from labelwise.classify.image_models import FewShotRegistry, ImageModels, text_model_for
from labelwise.classify.zeroshot import LabelEmbeddingCache, LabelLimits
from labelwise.embedding.registry import ModelRegistry
from labelwise.quota import RateLimiter, UnlimitedRateLimiter
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
