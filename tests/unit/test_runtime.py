"""The composition root (labelwise.runtime): what it builds from Settings."""

from __future__ import annotations

import pytest

from labelwise.embedding.manifest import ImagePreprocessing, ModelManifest
from labelwise.errors import UnsupportedInput
from labelwise.quota import MemoryRateLimiter, UnlimitedRateLimiter
from labelwise.runtime import build_image_models, build_limiter, build_upload_jobs, load_configured_clip
from labelwise.settings import Settings


def test_an_image_model_with_no_weights_and_no_endpoint_cannot_embed(settings: Settings) -> None:
    # Given an image model directory holding a manifest but no ONNX files, and no endpoint configured
    manifest = ModelManifest(
        name="efficientnet-lite0",
        family="efficientnet",
        dimension=4,
        modality="image",
        image=ImagePreprocessing(),
        feature_dimension=8,
        text_model="fake-model",
    )
    (settings.model_dir / manifest.name).mkdir(parents=True)
    manifest.save(settings.model_dir / manifest.name)
    # When the image models are built
    models = build_image_models(settings)
    # Then the model is listed, and using it says why it cannot embed
    assert models.available == ["efficientnet-lite0"]
    with pytest.raises(UnsupportedInput, match="no endpoint"):
        models.get("efficientnet-lite0")


def test_no_clip_unless_a_source_is_configured(settings: Settings) -> None:
    # Given settings without LABELWISE_CLIP_SOURCE
    # Then no CLIP model is loaded
    assert load_configured_clip(settings) is None


def test_the_limiter_follows_the_rate_settings(settings: Settings) -> None:
    # Given per-minute limits of zero, then the default limits, on the local store
    off = settings.model_copy(update={"rate_limit_requests_per_minute": 0, "rate_limit_tokens_per_minute": 0})
    # Then nothing is limited, then the limits are kept in memory
    assert isinstance(build_limiter(off), UnlimitedRateLimiter)
    assert isinstance(build_limiter(settings), MemoryRateLimiter)


def test_upload_jobs_need_their_queue(settings: Settings) -> None:
    # Given settings without LABELWISE_UPLOADS_QUEUE_URL
    # When the upload jobs are built
    # Then the cold start fails, naming the setting
    with pytest.raises(RuntimeError, match="LABELWISE_UPLOADS_QUEUE_URL"):
        build_upload_jobs(settings)
