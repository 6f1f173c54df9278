"""The embedder ports: what the classification logic needs from a text model (:class:`Embedder`)
and from an image model (:class:`ImageEmbedder`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import numpy.typing as npt

from labelwise.embedding.manifest import ModelManifest

Role = Literal["input", "label"]

#: What to do with a text longer than one model window:
#: ``pool`` embeds successive windows and pools them (up to ``max_input_tokens``, then truncates);
#: ``end`` / ``start`` keep one window, dropping the end / the start; ``none`` refuses the text
#: (:class:`labelwise.errors.InputTooLong`).
Truncate = Literal["pool", "end", "start", "none"]


@dataclass(frozen=True)
class EmbeddingBatch:
    """Embeddings of a batch of texts, in request order.

    ``vectors`` is ``(n, dimension)`` float32, each row L2-normalised. ``token_counts[i]`` is the
    number of tokens the model read for text ``i`` (special tokens and prefix included, summed over
    windows) and is what ``usage`` reports. ``truncated[i]`` is true when text ``i`` was longer than
    the manifest's ``max_input_tokens`` and its tail was dropped.
    """

    vectors: npt.NDArray[np.float32]
    token_counts: list[int]
    truncated: list[bool]

    @property
    def total_tokens(self) -> int:
        return sum(self.token_counts)


class Embedder(Protocol):
    """Turns texts into unit vectors. One instance per model, created once per process."""

    @property
    def manifest(self) -> ModelManifest: ...

    def embed(self, texts: Sequence[str], role: Role, truncate: Truncate = "pool") -> EmbeddingBatch:
        """Embed ``texts`` with the manifest's prefix for ``role``. Raises
        :class:`labelwise.errors.EmbedderUnavailable` if the runtime fails."""
        ...

    def count_tokens(self, texts: Sequence[str], role: Role) -> list[int]:
        """Tokens :meth:`embed` would read for each text (``truncate="pool"``), without running the model."""
        ...


#: What an image embedder returns: a batch (in-process models) or a bare ``(n, d)`` matrix (the
#: endpoint's answer); :func:`image_matrix` reads either.
ImageVectors = EmbeddingBatch | npt.NDArray[np.float32]


class ImageEmbedder(Protocol):
    """Turns decoded images (RGB ``uint8 [H, W, 3]``; grey and RGBA are converted) into vectors:
    the bundled EfficientNet, a CLIP model, or the router that sends images to the endpoint."""

    def zero_shot_vectors(self, images: Sequence[npt.NDArray[np.uint8]]) -> ImageVectors:
        """Vectors in the text model's space, comparable with label embeddings."""
        ...

    def features(self, images: Sequence[npt.NDArray[np.uint8]]) -> ImageVectors:
        """Few-shot features: compare them only with each other."""
        ...


def image_matrix(result: ImageVectors) -> npt.NDArray[np.float32]:
    """An image embedder's vectors as a float32 matrix, whether it returned a batch or an array."""
    return np.asarray(result.vectors if isinstance(result, EmbeddingBatch) else result, dtype=np.float32)
