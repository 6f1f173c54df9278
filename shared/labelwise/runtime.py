"""The composition root: the one place that picks and builds adapters from :class:`Settings`, once
per cold start: stores, ONNX/endpoint embedders, image models and their routers, CLIP, the rate
limiter (:func:`build_services`) and the upload jobs (:func:`build_upload_jobs`). The Lambda entries
(``functions/*``, through :mod:`labelwise.api.lambda_entry`) and ``labelwise serve`` call it."""

from __future__ import annotations

from pathlib import Path

from labelwise.classify.image_models import ImageModel, ImageModels
from labelwise.classify.zeroshot import LabelEmbeddingCache
from labelwise.embedding.clip import ClipEmbedder, load_clip
from labelwise.embedding.image_factory import image_embedder_factory
from labelwise.embedding.manifest import ModelManifest
from labelwise.embedding.port import ImageEmbedder
from labelwise.embedding.registry import ModelRegistry
from labelwise.endpoint.routing import image_router, routing_factory
from labelwise.errors import UnsupportedInput
from labelwise.images import ImageLoader
from labelwise.quota import MemoryRateLimiter, RateLimiter, UnlimitedRateLimiter
from labelwise.services import Services
from labelwise.settings import Settings
from labelwise.storage import open_stores
from labelwise.storage.ports import KeyStore
from labelwise.uploads.jobs import UploadJobs

CLIP_ALIASES = ("jina-clip-v1", "jina-clip-v2", "clip-*")


def build_image_models(settings: Settings, clip: ClipEmbedder | None = None) -> ImageModels:
    """Image models from ``settings.model_dir`` (and ``clip``, a configured CLIP model), routed
    through the endpoint when one is configured, their inputs fetched and decoded per ``settings``."""
    source = ImageLoader.from_settings(settings)

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


def build_key_store(settings: Settings) -> KeyStore:
    """The API key store ``settings.store`` names (``labelwise keys``)."""
    return open_stores(settings)[1]


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


def build_upload_jobs(settings: Settings, services: Services | None = None) -> UploadJobs:
    """The S3 upload jobs: bucket ``settings.bucket_name``, follow-ups to ``settings.uploads_queue_url``,
    over ``services`` (by default :func:`build_services` with the default model loaded)."""
    if not settings.uploads_queue_url:
        raise RuntimeError("LABELWISE_UPLOADS_QUEUE_URL is not set")
    # Imported here so that only the uploads function imports its boto3 adapters (cold start).
    from labelwise.uploads.aws import S3ObjectStore, SqsContinuationQueue, make_upload_clients

    if services is None:
        services = build_services(settings)
        services.warm_up()  # load the default model during INIT
    s3, sqs = make_upload_clients(settings)
    return UploadJobs(
        services,
        S3ObjectStore(settings.bucket_name, s3=s3),
        SqsContinuationQueue(settings.uploads_queue_url, sqs=sqs),
        bucket=settings.bucket_name,
    )
