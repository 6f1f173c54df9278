"""The bundled image model: EfficientNet-Lite0 (ImageNet), run by onnxruntime.

Two kinds of vectors come out of one forward pass:

* :meth:`EfficientNetEmbedder.features` - few-shot features: the 1280-d pooled activations, minus a
  mean vector computed at build time on sample photos (``feature_mean.npy``), L2-normalised. Compare
  them only with each other (``/v1/train`` examples), never with text.
* :meth:`EfficientNetEmbedder.zero_shot_vectors` - a **fallback** zero-shot vector in the text
  model's space (ConSE: Norouzi et al., "Zero-Shot Learning by Convex Combination of Semantic
  Embeddings", ICLR 2014): the probability-weighted mean of the text embeddings of the image's
  top-``k`` ImageNet classes (each class embedded as ``"lemma: WordNet definition"`` by the text
  model named in ``manifest.text_model``, role ``label``), L2-normalised. Weak outside ImageNet's
  domain (see docs/images.md); a CLIP model (:mod:`labelwise.embedding.clip`) is the real answer.

Preprocessing and the usage unit: :mod:`labelwise.embedding.pixels`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.embedding.manifest import ImagePreprocessing, ModelManifest
from labelwise.embedding.pixels import (
    DEFAULT_IMAGE_BATCH,
    F32,
    FEATURE_MEAN_FILE,
    IMAGE_TOKENS,
    l2_normalise,
    preprocess_batch,
)
from labelwise.embedding.port import EmbeddingBatch
from labelwise.embedding.session import cpu_session
from labelwise.errors import EmbedderUnavailable
from labelwise.numerics import softmax

MODEL_FILE = "model.onnx"
CLASS_TEXTS_FILE = "imagenet_classes.json"
CLASS_EMBEDDINGS_FILE = "class_text_embeddings.npy"

#: ImageNet classes mixed per image by ConSE (Norouzi et al. use T = 10; 5 measured no worse here).
CONSE_TOP_K = 5


def conse(probabilities: npt.NDArray[Any], class_vectors: npt.NDArray[Any], top_k: int = CONSE_TOP_K) -> F32:
    """ConSE vectors: for each row of ``probabilities [n, classes]``, the probability-weighted sum
    of the ``top_k`` most probable rows of ``class_vectors [classes, dim]``, L2-normalised."""
    p = np.asarray(probabilities, np.float64)
    k = max(1, min(top_k, p.shape[1]))
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    weights = np.take_along_axis(p, top, axis=1)
    vecs = np.einsum("nk,nkd->nd", weights, np.asarray(class_vectors, np.float64)[top])
    return l2_normalise(vecs)


# ------------------------------------------------------------------------------ embedder
class EfficientNetEmbedder:
    """The bundled image model (``modality == "image"``, ``family == "efficientnet"``).

    Thread-safe; create once per process (:meth:`from_dir`). Images are decoded RGB
    ``uint8 [H, W, 3]`` arrays (grey and RGBA are converted, see :func:`to_rgb`).
    """

    def __init__(
        self,
        session: Any,
        manifest: ModelManifest,
        class_embeddings: F32,
        feature_mean: F32,
        *,
        class_texts: Sequence[str] = (),
        batch_size: int = DEFAULT_IMAGE_BATCH,
        top_k: int = CONSE_TOP_K,
    ) -> None:
        if manifest.image is None:
            raise ValueError(f"manifest of {manifest.name} has no image preprocessing")
        if class_embeddings.ndim != 2 or class_embeddings.shape[1] != manifest.dimension:
            raise ValueError(f"class embeddings must be [classes, {manifest.dimension}]")
        if feature_mean.shape != (manifest.feature_dimension,):
            raise ValueError(f"feature mean must be [{manifest.feature_dimension}]")
        self._session = session
        self._manifest = manifest
        self._spec: ImagePreprocessing = manifest.image
        self._class_embeddings = np.asarray(class_embeddings, np.float32)
        self._feature_mean = np.asarray(feature_mean, np.float32)
        self._class_texts = list(class_texts)
        self._batch_size = max(1, batch_size)
        self._top_k = top_k

    @classmethod
    def from_dir(
        cls,
        model_dir: Path,
        *,
        intra_op_threads: int | None = None,
        batch_size: int = DEFAULT_IMAGE_BATCH,
        model_file: str = MODEL_FILE,
    ) -> EfficientNetEmbedder:
        try:
            manifest = ModelManifest.load(model_dir)
            session = cpu_session(model_dir / model_file, intra_op_threads=intra_op_threads)
            class_embeddings = np.load(model_dir / CLASS_EMBEDDINGS_FILE, allow_pickle=False)
            feature_mean = np.load(model_dir / FEATURE_MEAN_FILE, allow_pickle=False)
            texts = json.loads((model_dir / CLASS_TEXTS_FILE).read_text(encoding="utf-8"))
            return cls(
                session,
                manifest,
                class_embeddings,
                feature_mean,
                class_texts=texts,
                batch_size=batch_size,
            )
        except Exception as exc:  # OSError, ValueError, ImportError, onnxruntime's own types
            raise EmbedderUnavailable(f"cannot load image model from {model_dir}: {exc}") from exc

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    @property
    def class_texts(self) -> list[str]:
        """The ImageNet class texts (``"lemma: definition"``), in logit order."""
        return list(self._class_texts)

    def forward(self, images: Sequence[npt.NDArray[Any]]) -> tuple[F32, F32]:
        """Raw ``(logits [n, classes], pooled features [n, feature_dimension])``."""
        m = self._manifest
        logits: list[F32] = []
        feats: list[F32] = []
        for b0 in range(0, len(images), self._batch_size):
            pixels = preprocess_batch(images[b0 : b0 + self._batch_size], self._spec)
            try:
                lg, ft = self._session.run(["logits", "features"], {"pixel_values": pixels})
            except Exception as exc:  # onnxruntime's exception types are not a public hierarchy
                raise EmbedderUnavailable(f"image model {m.name} failed: {exc}") from exc
            logits.append(lg)
            feats.append(ft)
        if not logits:
            n_cls = self._class_embeddings.shape[0]
            return np.zeros((0, n_cls), np.float32), np.zeros((0, m.feature_dimension), np.float32)
        return np.concatenate(logits), np.concatenate(feats)

    def class_probabilities(self, images: Sequence[npt.NDArray[Any]]) -> F32:
        """ImageNet class probabilities ``[n, 1000]`` (softmax of the logits)."""
        return softmax(self.forward(images)[0]).astype(np.float32)

    def _batch(self, vectors: F32) -> EmbeddingBatch:
        n = vectors.shape[0]
        return EmbeddingBatch(vectors, [IMAGE_TOKENS] * n, [False] * n)

    def features(self, images: Sequence[npt.NDArray[Any]]) -> EmbeddingBatch:
        """Few-shot features: pooled activations minus the build-time mean, L2-normalised."""
        _, feats = self.forward(images)
        return self._batch(l2_normalise(feats.astype(np.float64) - self._feature_mean))

    def zero_shot_vectors(self, images: Sequence[npt.NDArray[Any]]) -> EmbeddingBatch:
        """ConSE vectors in the text model's space (``manifest.dimension``), L2-normalised."""
        logits, _ = self.forward(images)
        return self._batch(conse(softmax(logits), self._class_embeddings, self._top_k))

    def vectors(self, images: Sequence[npt.NDArray[Any]]) -> tuple[EmbeddingBatch, EmbeddingBatch]:
        """``(zero_shot_vectors, features)`` from one forward pass."""
        logits, feats = self.forward(images)
        zs = conse(softmax(logits), self._class_embeddings, self._top_k)
        return self._batch(zs), self._batch(l2_normalise(feats.astype(np.float64) - self._feature_mean))
