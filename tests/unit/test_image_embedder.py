"""Unit tests of the image runtime: preprocessing, ConSE and EfficientNetEmbedder on a tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labelwise.embedding.efficientnet import (
    CLASS_EMBEDDINGS_FILE,
    CLASS_TEXTS_FILE,
    MODEL_FILE,
    EfficientNetEmbedder,
    conse,
    softmax,
)
from labelwise.embedding.image_factory import image_embedder_factory
from labelwise.embedding.manifest import ImagePreprocessing, ModelManifest
from labelwise.embedding.pixels import FEATURE_MEAN_FILE, IMAGE_TOKENS, preprocess, resize_and_crop, to_rgb
from labelwise.errors import EmbedderUnavailable, InvalidImage

SPEC = ImagePreprocessing(size=224, resize=256)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ preprocessing
@pytest.mark.parametrize("shape", [(480, 640), (640, 480), (256, 256), (100, 300), (1000, 30)])
def test_preprocess_gives_the_model_input_shape(shape: tuple[int, int]) -> None:
    # Given images of several aspect ratios (some smaller than the crop)
    # When preprocessed
    x = preprocess(_image(*shape), SPEC)
    # Then each is a float32 [3, 224, 224] in [-1, 1]
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    assert x.min() >= -1.0 and x.max() <= 1.0


def test_preprocess_scales_and_normalises_known_values() -> None:
    # Given a constant image (resizing and cropping cannot change it)
    img = np.zeros((300, 400, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 0, 255, 51
    # When preprocessed with mean 0.5 / std 0.5
    x = preprocess(img, SPEC)
    # Then channel values are (v / 255 - 0.5) / 0.5 in RGB order
    np.testing.assert_allclose(x[:, 100, 100], [-1.0, 1.0, -0.6], atol=1e-6)


def test_resize_keeps_aspect_and_crops_the_centre() -> None:
    # Given a 256 x 512 image whose columns encode their x position
    img = np.repeat(np.repeat(np.arange(512, dtype=np.int64)[None, :, None] // 2, 256, 0), 3, 2).astype(
        np.uint8
    )
    # When resized (short side already 256) and centre-cropped to 224
    out = resize_and_crop(img, SPEC)
    # Then the crop starts at x = (512 - 224) / 2 = 144 (value 72) and is not resampled
    assert out.shape == (224, 224, 3)
    assert out[0, 0, 0] == 72 and out[0, -1, 0] == (144 + 223) // 2


def test_extreme_aspect_ratios_give_the_same_centre() -> None:
    # Given a 10 x 4000 strip: resizing it whole would make a 256 x 102400 image
    img = _image(10, 4000, 7)
    # When preprocessed (the strip is cut to 4x its short side first)
    out = resize_and_crop(img, SPEC)
    # Then the result is the crop of the full resize
    from PIL import Image

    full = np.asarray(Image.fromarray(img).resize((102400, 256), Image.Resampling.BICUBIC))
    left = (102400 - 224) // 2
    np.testing.assert_array_equal(out, full[16:240, left : left + 224])


def test_input_is_not_mutated() -> None:
    img = _image(300, 200)
    before = img.copy()
    preprocess(img, SPEC)
    np.testing.assert_array_equal(img, before)


def test_grey_and_rgba_are_converted_and_bad_arrays_refused() -> None:
    grey = np.full((5, 6), 7, np.uint8)
    assert to_rgb(grey).shape == (5, 6, 3) and (to_rgb(grey) == 7).all()
    rgba = np.zeros((2, 2, 4), np.uint8)  # fully transparent black on white -> white
    assert (to_rgb(rgba) == 255).all()
    with pytest.raises(InvalidImage):
        to_rgb(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(InvalidImage):
        to_rgb(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(InvalidImage):
        to_rgb(np.zeros((0, 4, 3), np.uint8))


# ------------------------------------------------------------------------------ ConSE
def test_conse_matches_a_naive_per_image_loop() -> None:
    rng = np.random.default_rng(0)
    probs = softmax(rng.normal(size=(4, 12)) * 3)
    classes = rng.normal(size=(12, 5))
    got = conse(probs, classes, top_k=3)
    for i in range(4):
        top = sorted(range(12), key=lambda j: -probs[i, j])[:3]
        v = sum(probs[i, j] * classes[j] for j in top)
        np.testing.assert_allclose(got[i], v / np.linalg.norm(v), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)


def test_conse_of_a_confident_image_is_its_class_vector() -> None:
    classes = np.eye(3)
    probs = np.array([[0.0, 1.0, 0.0]])
    np.testing.assert_allclose(conse(probs, classes, top_k=2), [[0.0, 1.0, 0.0]], atol=1e-7)


# ------------------------------------------------------------------------------ EfficientNetEmbedder
@pytest.fixture(scope="module")
def tiny_image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    import onnx

    from labelwise.modelbuild.image.efficientnet import (
        EfficientNetConfig,
        Stage,
        build_graph,
        random_state_dict,
    )

    cfg = EfficientNetConfig(
        stages=(Stage(1, 3, 1, 1, 8), Stage(1, 3, 2, 2, 12)), stem=8, head=16, num_classes=6, image_size=32
    )
    d = tmp_path_factory.mktemp("tiny-image-model")
    onnx.save(build_graph(random_state_dict(cfg, seed=3), cfg, name="tiny"), str(d / MODEL_FILE))
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(6, 5))
    np.save(
        d / CLASS_EMBEDDINGS_FILE, (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    )
    np.save(d / FEATURE_MEAN_FILE, rng.normal(size=16).astype(np.float32))
    (d / CLASS_TEXTS_FILE).write_text(json.dumps([f"class {i}: a thing" for i in range(6)]))
    ModelManifest(
        name="tiny-image",
        family="efficientnet",
        modality="image",
        dimension=5,
        feature_dimension=16,
        image=ImagePreprocessing(size=32, resize=36),
        text_model="fake-text",
    ).save(d)
    return d


def test_embedder_vectors_are_unit_and_counted_as_image_units(tiny_image_dir: Path) -> None:
    # Given the tiny image model and three images of different sizes
    emb = EfficientNetEmbedder.from_dir(tiny_image_dir, intra_op_threads=1)
    images = [_image(40, 50, 1), _image(64, 32, 2), _image(36, 36, 3)]
    # When embedded both ways
    zs = emb.zero_shot_vectors(images)
    ft = emb.features(images)
    # Then vectors are unit rows of the manifest's dimensions; each image counts IMAGE_TOKENS
    assert zs.vectors.shape == (3, 5) and ft.vectors.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(zs.vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ft.vectors, axis=1), 1.0, rtol=1e-5)
    assert zs.token_counts == [IMAGE_TOKENS] * 3 and zs.truncated == [False] * 3
    assert emb.class_texts[0] == "class 0: a thing"


def test_embedder_vectors_follow_their_definitions(tiny_image_dir: Path) -> None:
    # Given raw logits and features of the model
    emb = EfficientNetEmbedder.from_dir(tiny_image_dir)
    images = [_image(40, 50, 4), _image(50, 40, 5)]
    logits, feats = emb.forward(images)
    classes = np.load(tiny_image_dir / CLASS_EMBEDDINGS_FILE)
    mean = np.load(tiny_image_dir / FEATURE_MEAN_FILE)
    # Then features are the centred, normalised pooled activations and zero-shot is ConSE
    centred = feats - mean
    np.testing.assert_allclose(
        emb.features(images).vectors, centred / np.linalg.norm(centred, axis=1, keepdims=True), atol=1e-5
    )
    np.testing.assert_allclose(
        emb.zero_shot_vectors(images).vectors, conse(softmax(logits), classes), atol=1e-6
    )
    zs, _ = emb.vectors(images)
    np.testing.assert_allclose(zs.vectors, emb.zero_shot_vectors(images).vectors, atol=1e-6)


def test_results_do_not_depend_on_batching(tiny_image_dir: Path) -> None:
    images = [_image(40 + i, 40, i) for i in range(5)]
    a = EfficientNetEmbedder.from_dir(tiny_image_dir, batch_size=2).features(images).vectors
    b = EfficientNetEmbedder.from_dir(tiny_image_dir, batch_size=8).features(images[3:4]).vectors
    np.testing.assert_allclose(a[3:4], b, atol=1e-5)


def test_no_images_gives_empty_batches(tiny_image_dir: Path) -> None:
    emb = EfficientNetEmbedder.from_dir(tiny_image_dir)
    assert emb.features([]).vectors.shape == (0, 16)
    assert emb.zero_shot_vectors([]).vectors.shape == (0, 5)


def test_factory_and_missing_files(tiny_image_dir: Path, tmp_path: Path) -> None:
    assert isinstance(image_embedder_factory(tiny_image_dir), EfficientNetEmbedder)
    (tmp_path / "manifest.json").write_text((tiny_image_dir / "manifest.json").read_text())
    with pytest.raises(EmbedderUnavailable):
        EfficientNetEmbedder.from_dir(tmp_path)


def test_text_manifests_still_load_without_image_fields() -> None:
    m = ModelManifest.from_dict(
        {
            "name": "t",
            "family": "bert",
            "dimension": 4,
            "window": 8,
            "cls_token_id": 1,
            "sep_token_id": 2,
            "pad_token_id": 0,
        }
    )
    assert m.modality == "text" and m.image is None and m.feature_dimension == 0
