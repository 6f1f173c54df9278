"""The built image model (``efficientnet-lite0``) on real photos. Marker ``model``: skipped with a
reason when the model is not built (``python -m labelwise.modelbuild``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelwise.embedding.efficientnet import EfficientNetEmbedder
from labelwise.embedding.manifest import MANIFEST_FILE
from labelwise.settings import Settings

pytestmark = pytest.mark.model

MODEL = "efficientnet-lite0"


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings.from_environ()


@pytest.fixture(scope="module")
def image_model_dir(settings: Settings) -> Path:
    d = settings.model_dir / MODEL
    if not (d / MANIFEST_FILE).exists():
        pytest.skip(f"image model not built: {d} (run `python -m labelwise.modelbuild`)")
    return d


@pytest.fixture(scope="module")
def embedder(image_model_dir: Path) -> EfficientNetEmbedder:
    return EfficientNetEmbedder.from_dir(image_model_dir)


@pytest.fixture(scope="module")
def samples(settings: Settings):
    from labelwise.modelbuild.image.samples import foolbox_samples, skimage_photos

    try:
        return {
            "imagenet": foolbox_samples(settings.cache_dir, "imagenet"),
            "skimage": skimage_photos(settings.cache_dir),
        }
    except Exception as exc:  # no cached wheel and no network
        pytest.skip(f"sample photos unavailable: {exc}")


def test_manifest_describes_an_image_model(embedder: EfficientNetEmbedder) -> None:
    m = embedder.manifest
    assert (m.modality, m.family) == ("image", "efficientnet")
    assert m.image is not None and (m.image.size, m.image.resize, m.image.mean) == (224, 256, (0.5, 0.5, 0.5))
    assert m.feature_dimension == 1280 and m.dimension == 384 and m.text_model == "multilingual-e5-small"
    assert len(embedder.class_texts) == 1000 and embedder.class_texts[285].startswith("Egyptian cat")


def test_top1_on_the_foolbox_imagenet_photos(embedder: EfficientNetEmbedder, samples) -> None:
    # Given the 20 ImageNet photos shipped with foolbox
    photos = samples["imagenet"]
    # When classified into ImageNet's 1000 classes
    logits, _ = embedder.forward([p.pixels for p in photos])
    # Then at least 17 are right (measured 18)
    assert sum(int(np.argmax(lg)) == p.label for lg, p in zip(logits, photos, strict=True)) >= 17


def test_conse_puts_the_cat_near_cat_text(
    embedder: EfficientNetEmbedder, samples, settings: Settings
) -> None:
    from labelwise.embedding.onnx_embedder import OnnxEmbedder

    # Given scikit-image's photos (astronaut, coffee, chelsea the cat, rocket) and label texts
    photos = {s.name.split(".")[0]: s.pixels for s in samples["skimage"]}
    labels = ["astronaut", "coffee", "cat", "rocket"]
    text = OnnxEmbedder.from_dir(settings.model_dir / embedder.manifest.text_model)
    label_vectors = text.embed(labels, "label").vectors
    # When the photos are projected into the text space (ConSE)
    vectors = embedder.zero_shot_vectors([photos[n] for n in ("astronaut", "coffee", "chelsea", "rocket")])
    # Then the cat and the coffee land nearest their labels
    predicted = [labels[i] for i in (vectors.vectors @ label_vectors.T).argmax(axis=1)]
    assert predicted[2] == "cat" and predicted[1] == "coffee"
    assert vectors.token_counts == [1, 1, 1, 1]


def test_features_separate_photo_kinds(embedder: EfficientNetEmbedder, samples) -> None:
    # Given two photos of each of two ImageNet classes (609 jeep x2 in foolbox's samples) and others
    photos = samples["imagenet"]
    feats = embedder.features([p.pixels for p in photos]).vectors
    np.testing.assert_allclose(np.linalg.norm(feats, axis=1), 1.0, rtol=1e-5)
    jeeps = [i for i, p in enumerate(photos) if p.label == 609]
    assert len(jeeps) == 2
    sims = feats @ feats[jeeps[0]]
    # Then the other jeep is among the three nearest neighbours of the first
    assert jeeps[1] in np.argsort(-sims)[1:4]
