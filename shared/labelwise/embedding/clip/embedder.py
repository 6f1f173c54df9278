"""The runtime CLIP model: image tower + text tower (ONNX, onnxruntime) + CLIP's BPE tokenizer.

A CLIP model directory holds:

- ``vision_model.onnx`` (or ``onnx/vision_model.onnx``): input ``pixel_values`` float32
  ``[batch, 3, S, S]``; output ``image_embeds`` ``[batch, D]`` (else its first output);
- ``text_model.onnx`` (or ``onnx/text_model.onnx``): input ``input_ids`` int64 ``[batch, seq]``
  (``attention_mask`` too if the graph declares it); output ``text_embeds`` ``[batch, D]`` (else its
  first output). Hugging Face / Optimum exports of ``CLIPVisionModelWithProjection`` and
  ``CLIPTextModelWithProjection`` have exactly these names;
- the tokenizer file (:mod:`labelwise.embedding.clip.tokenizer`);
- ``manifest.json`` or a Hugging Face layout (:mod:`labelwise.embedding.clip.manifest`).

Texts are wrapped as ``<|startoftext|> ... <|endoftext|>`` and cut to the 77-token context
(``truncate="pool"``/``"end"`` keep the start, ``"start"`` keeps the end, ``"none"`` refuses).
Images are preprocessed by :mod:`labelwise.embedding.pixels` and count
:data:`labelwise.embedding.pixels.IMAGE_TOKENS` each.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.embedding.clip.manifest import load_clip_manifest
from labelwise.embedding.clip.tokenizer import BPE_FILE, CONTEXT_LENGTH, MERGES_FILE, ClipTokenizer
from labelwise.embedding.manifest import ImagePreprocessing, ModelManifest
from labelwise.embedding.pixels import (
    DEFAULT_IMAGE_BATCH,
    F32,
    FEATURE_MEAN_FILE,
    IMAGE_TOKENS,
    l2_normalise,
    preprocess_batch,
)
from labelwise.embedding.port import EmbeddingBatch, Role, Truncate
from labelwise.embedding.session import cpu_session
from labelwise.errors import EmbedderUnavailable, InputTooLong

VISION_FILES = ("vision_model.onnx", "onnx/vision_model.onnx")
TEXT_FILES = ("text_model.onnx", "onnx/text_model.onnx")


def _first(model_dir: Path, names: Sequence[str]) -> Path:
    for n in names:
        if (model_dir / n).exists():
            return model_dir / n
    raise FileNotFoundError(f"none of {', '.join(names)} in {model_dir}")


class ClipEmbedder:
    """A CLIP model: :meth:`embed` (text tower; implements the text
    :class:`labelwise.embedding.port.Embedder` protocol, so label texts and images share one space),
    :meth:`zero_shot_vectors` and :meth:`features` (image tower). Thread-safe; create once."""

    def __init__(
        self,
        vision: Any,
        text: Any,
        tokenizer: ClipTokenizer,
        manifest: ModelManifest,
        *,
        feature_mean: F32 | None = None,
        batch_size: int = DEFAULT_IMAGE_BATCH,
    ) -> None:
        if manifest.image is None:
            raise ValueError("a CLIP manifest needs image preprocessing")
        self._vision = vision
        self._text = text
        self._tok = tokenizer
        self._manifest = manifest
        self._spec: ImagePreprocessing = manifest.image
        self._feature_mean = feature_mean
        self._batch_size = max(1, batch_size)
        self._vision_in = vision.get_inputs()[0].name
        self._vision_out = self._output_name(vision, "image_embeds")
        text_inputs = {i.name: i for i in text.get_inputs()}
        self._text_in = "input_ids" if "input_ids" in text_inputs else text.get_inputs()[0].name
        self._text_mask = "attention_mask" in text_inputs
        seq = text_inputs[self._text_in].shape[1] if len(text_inputs[self._text_in].shape) > 1 else None
        self._fixed_seq = seq if isinstance(seq, int) else None
        self._text_out = self._output_name(text, "text_embeds")
        self._context = manifest.window or CONTEXT_LENGTH

    @staticmethod
    def _output_name(session: Any, wanted: str) -> str:
        names = [o.name for o in session.get_outputs()]
        return wanted if wanted in names else names[0]

    @classmethod
    def from_dir(
        cls,
        model_dir: Path,
        *,
        name: str | None = None,
        intra_op_threads: int | None = None,
        batch_size: int = DEFAULT_IMAGE_BATCH,
    ) -> ClipEmbedder:
        try:
            manifest = load_clip_manifest(model_dir, name)
            vision = cpu_session(_first(model_dir, VISION_FILES), intra_op_threads=intra_op_threads)
            text = cpu_session(_first(model_dir, TEXT_FILES), intra_op_threads=intra_op_threads)
            tokenizer = ClipTokenizer.from_file(_first(model_dir, (BPE_FILE, MERGES_FILE)))
            mean_path = model_dir / FEATURE_MEAN_FILE
            mean = np.load(mean_path, allow_pickle=False) if mean_path.exists() else None
            return cls(vision, text, tokenizer, manifest, feature_mean=mean, batch_size=batch_size)
        except Exception as exc:  # OSError, ValueError, onnxruntime's own types
            raise EmbedderUnavailable(f"cannot load CLIP model from {model_dir}: {exc}") from exc

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    @property
    def tokenizer(self) -> ClipTokenizer:
        return self._tok

    def served_as(self, name: str, aliases: Sequence[str]) -> ClipEmbedder:
        """The same model (sessions shared) under ``name`` with ``aliases``: a deployment's own name
        for it, whose text side is itself."""
        served = copy.copy(self)
        served._manifest = self._manifest.replace(name=name, aliases=tuple(aliases), text_model=name)
        return served

    # ----------------------------------------------------------------- text tower
    def _content(self, texts: Sequence[str], role: Role) -> list[list[int]]:
        prefix = self._manifest.prefixes.input if role == "input" else self._manifest.prefixes.label
        return [self._tok.encode(prefix + t) for t in texts]

    def count_tokens(self, texts: Sequence[str], role: Role) -> list[int]:
        per = self._context - 2
        return [min(len(c), per) + 2 for c in self._content(texts, role)]

    def tokenize(
        self, texts: Sequence[str], role: Role = "input", truncate: Truncate = "pool"
    ) -> tuple[npt.NDArray[np.int64], list[bool]]:
        """``input_ids [n, context]`` (``sot ... eot`` then ``pad_token_id``) and per-text truncation."""
        per = self._context - 2
        rows: list[list[int]] = []
        cut: list[bool] = []
        for i, ids in enumerate(self._content(texts, role)):
            cut.append(len(ids) > per)
            if len(ids) > per:
                if truncate == "none":
                    raise InputTooLong(
                        f"Input {i} is too long: {len(ids) + 2} tokens, and the model reads at most "
                        f"{self._context} (truncation was disabled)."
                    )
                ids = ids[len(ids) - per :] if truncate == "start" else ids[:per]
            rows.append([self._tok.sot_id, *ids, self._tok.eot_id])
        seq = self._fixed_seq or max((len(r) for r in rows), default=2)
        out = np.full((len(rows), seq), self._manifest.pad_token_id, np.int64)
        for r, row in enumerate(rows):
            out[r, : len(row)] = row
        return out, cut

    def embed(self, texts: Sequence[str], role: Role, truncate: Truncate = "pool") -> EmbeddingBatch:
        """Text-tower embeddings (L2-normalised) in the space of :meth:`zero_shot_vectors`."""
        dim = self._manifest.dimension
        if not texts:
            return EmbeddingBatch(np.zeros((0, dim), np.float32), [], [])
        ids, cut = self.tokenize(texts, role, truncate)
        outs: list[F32] = []
        for b0 in range(0, len(ids), self._batch_size):
            batch = ids[b0 : b0 + self._batch_size]
            feeds: dict[str, Any] = {self._text_in: batch}
            if self._text_mask:
                mask = np.zeros_like(batch)
                for r, row in enumerate(batch):
                    mask[r, : int(np.argmax(row == self._tok.eot_id)) + 1] = 1
                feeds["attention_mask"] = mask
            try:
                (vec,) = self._text.run([self._text_out], feeds)
            except Exception as exc:
                raise EmbedderUnavailable(f"CLIP text tower {self._manifest.name} failed: {exc}") from exc
            outs.append(vec)
        counts = [int(np.argmax(r == self._tok.eot_id)) + 1 for r in ids]
        return EmbeddingBatch(l2_normalise(np.concatenate(outs)), counts, cut)

    # ----------------------------------------------------------------- image tower
    def image_embeddings(self, images: Sequence[npt.NDArray[Any]]) -> F32:
        """Raw image-tower outputs ``[n, D]`` (not normalised)."""
        outs: list[F32] = []
        for b0 in range(0, len(images), self._batch_size):
            pixels = preprocess_batch(images[b0 : b0 + self._batch_size], self._spec)
            try:
                (vec,) = self._vision.run([self._vision_out], {self._vision_in: pixels})
            except Exception as exc:
                raise EmbedderUnavailable(f"CLIP image tower {self._manifest.name} failed: {exc}") from exc
            outs.append(vec)
        if not outs:
            return np.zeros((0, self._manifest.dimension), np.float32)
        return np.concatenate(outs).astype(np.float32)

    def zero_shot_vectors(self, images: Sequence[npt.NDArray[Any]]) -> EmbeddingBatch:
        """Image embeddings, L2-normalised, comparable with :meth:`embed` of label texts."""
        v = l2_normalise(self.image_embeddings(images))
        return EmbeddingBatch(v, [IMAGE_TOKENS] * len(v), [False] * len(v))

    def features(self, images: Sequence[npt.NDArray[Any]]) -> EmbeddingBatch:
        """Few-shot features: image embeddings (minus ``feature_mean.npy`` when the directory has
        one), L2-normalised."""
        v = self.image_embeddings(images).astype(np.float64)
        if self._feature_mean is not None:
            v = v - self._feature_mean
        out = l2_normalise(v)
        return EmbeddingBatch(out, [IMAGE_TOKENS] * len(out), [False] * len(out))
