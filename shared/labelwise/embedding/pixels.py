"""What every image embedder shares: decoded pixels to model input, and the image usage unit.

Preprocessing (from the manifest's :class:`ImagePreprocessing`): short side to ``resize``
(bicubic, Pillow), centre crop ``size``, scale to [0, 1], ``(x - mean) / std``, CHW. Used by the
bundled EfficientNet (:mod:`labelwise.embedding.efficientnet`), CLIP's image tower
(:mod:`labelwise.embedding.clip`) and the model build.

Usage: every image counts as :data:`IMAGE_TOKENS` token ("image unit") in ``token_counts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.embedding.manifest import ImagePreprocessing
from labelwise.errors import InvalidImage

#: Few-shot features' build-time mean (an image model directory's optional file).
FEATURE_MEAN_FILE = "feature_mean.npy"

#: What one image counts for in ``EmbeddingBatch.token_counts`` (and so in usage and quotas).
IMAGE_TOKENS = 1
#: Images per onnxruntime call (batch 8 measured ~84 images/s on 2 cores; larger gains nothing).
DEFAULT_IMAGE_BATCH = 8
#: Longest side kept before resizing, as a multiple of the short side (see :func:`resize_and_crop`).
MAX_ASPECT = 4

ImageArray = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


# ------------------------------------------------------------------------------ preprocessing
def to_rgb(image: npt.NDArray[Any]) -> ImageArray:
    """``uint8 [H, W, 3]`` from a decoded image: RGB as is, grey ``[H, W]``/``[H, W, 1]`` repeated,
    RGBA composited on white. Raises :class:`InvalidImage` for anything else."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise InvalidImage(f"image pixels must be uint8, got {a.dtype}")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[0] < 1 or a.shape[1] < 1 or a.shape[2] not in (1, 3, 4):
        raise InvalidImage(f"image must be [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], got {list(a.shape)}")
    if a.shape[2] == 1:
        return np.repeat(a, 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[:, :, 3:4].astype(np.float32) / 255.0
        rgb = a[:, :, :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return a


def resize_and_crop(image: npt.NDArray[Any], spec: ImagePreprocessing) -> ImageArray:
    """Short side to ``spec.resize`` (aspect kept, long side rounded), then the centre
    ``spec.size`` square (torchvision ``Resize`` + ``CenterCrop`` conventions)."""
    from PIL import Image

    rgb = to_rgb(image)
    h, w = rgb.shape[:2]
    # A very long strip would be resized to a huge array; only its centre is kept, so cut it first
    # (to MAX_ASPECT times the short side: the crop and its resampling support lie well inside).
    short = min(h, w)
    if max(h, w) > MAX_ASPECT * short:
        keep = MAX_ASPECT * short
        if h > w:
            rgb = rgb[(h - keep) // 2 : (h - keep) // 2 + keep]
        else:
            rgb = rgb[:, (w - keep) // 2 : (w - keep) // 2 + keep]
        h, w = rgb.shape[:2]
    scale = spec.resize / min(h, w)
    nh, nw = (
        (spec.resize, max(spec.resize, round(w * scale)))
        if h <= w
        else (
            max(spec.resize, round(h * scale)),
            spec.resize,
        )
    )
    resample = Image.Resampling.BICUBIC if spec.interpolation == "bicubic" else Image.Resampling.BILINEAR
    im = Image.fromarray(rgb)
    if (nh, nw) != (h, w):
        im = im.resize((nw, nh), resample)
    top = round((nh - spec.size) / 2)
    left = round((nw - spec.size) / 2)
    if top < 0 or left < 0:  # resize smaller than the crop: pad by resizing up to the crop
        im = im.resize((max(nw, spec.size), max(nh, spec.size)), resample)
        top, left = max(top, 0), max(left, 0)
    return np.asarray(im.crop((left, top, left + spec.size, top + spec.size)), dtype=np.uint8)


def preprocess(image: npt.NDArray[Any], spec: ImagePreprocessing) -> F32:
    """Model input ``float32 [3, size, size]`` for one decoded image."""
    # (x / 255 - mean) / std as one multiply-add per channel, written straight into CHW order
    scale = (1.0 / (255.0 * np.asarray(spec.std, np.float64))).astype(np.float32)
    shift = (-np.asarray(spec.mean, np.float64) / np.asarray(spec.std, np.float64)).astype(np.float32)
    chw = resize_and_crop(image, spec).transpose(2, 0, 1)
    out = np.empty(chw.shape, np.float32)
    for c in range(3):
        np.multiply(chw[c], scale[c], out=out[c], casting="unsafe")
        out[c] += shift[c]
    return out


def preprocess_batch(images: Sequence[npt.NDArray[Any]], spec: ImagePreprocessing) -> F32:
    if not images:
        return np.zeros((0, 3, spec.size, spec.size), np.float32)
    return np.stack([preprocess(im, spec) for im in images])


# ------------------------------------------------------------------------------ numerics
def l2_normalise(x: npt.NDArray[Any]) -> F32:
    x = np.asarray(x, np.float64)
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)
