"""Zero-shot classification: cosine similarity to label embeddings, softmax per label group.

Labels are embedded by their distinctive part (:func:`labelwise.classify.labels.distinctive_labels`:
words that all labels of a group start or end with are dropped), so that a shared frame such as
``"... review"`` cannot invert a task. :func:`zeroshot_logits` is the one place that turns input
vectors and label texts into the scores the softmax reads; the few-shot learner may start from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from labelwise.classify.labels import distinctive_labels
from labelwise.classify.lru import LRU
from labelwise.classify.scoring import cosine_similarity, softmax
from labelwise.embedding.port import Embedder
from labelwise.errors import InvalidLabels, LabelLimitExceeded

if TYPE_CHECKING:
    from labelwise.settings import Settings

FloatArray = npt.NDArray[np.float32]

#: Key of the single, unnamed group when labels are a plain list.
UNGROUPED = ""


@dataclass(frozen=True)
class LabelLimits:
    max_labels: int = 512
    max_groups: int = 8
    max_group_labels: int = 64
    max_label_chars: int = 256

    @classmethod
    def from_settings(cls, settings: Settings) -> LabelLimits:
        return cls(
            max_labels=settings.max_labels,
            max_groups=settings.max_label_groups,
            max_group_labels=settings.max_labels_per_group,
            max_label_chars=settings.max_label_chars,
        )


def validate_label_list(labels: Sequence[str], limits: LabelLimits, where: str = "labels") -> list[str]:
    """Check one list of labels: 1..max, non-empty, not too long, distinct. Returns it as a list."""
    if len(labels) == 0:
        raise InvalidLabels(f"`{where}` must contain at least one label.")
    if len(labels) > limits.max_labels:
        raise LabelLimitExceeded(
            f"`{where}` has {len(labels)} labels; at most {limits.max_labels} are allowed."
        )
    seen: set[str] = set()
    for i, label in enumerate(labels):
        if not label.strip():
            raise InvalidLabels(f"`{where}[{i}]` is empty; labels must be non-empty text.")
        if len(label) > limits.max_label_chars:
            raise InvalidLabels(
                f"`{where}[{i}]` is {len(label)} characters long; "
                f"at most {limits.max_label_chars} are allowed."
            )
        if label in seen:
            raise InvalidLabels(f"`{where}` contains '{label}' more than once; labels must be distinct.")
        seen.add(label)
    return list(labels)


def normalize_label_groups(
    labels: Sequence[str] | dict[str, list[str]], limits: LabelLimits
) -> dict[str, list[str]]:
    """Validated label groups; a plain list becomes the single group :data:`UNGROUPED`."""
    if isinstance(labels, dict):
        if not labels:
            raise InvalidLabels("`labels` must contain at least one group.")
        if len(labels) > limits.max_groups:
            raise LabelLimitExceeded(
                f"`labels` has {len(labels)} groups; at most {limits.max_groups} are allowed."
            )
        groups: dict[str, list[str]] = {}
        for name, group in labels.items():
            if not name.strip():
                raise InvalidLabels("Label group names must be non-empty.")
            per_group = replace(limits, max_labels=min(limits.max_labels, limits.max_group_labels))
            groups[name] = validate_label_list(group, per_group, where=f"labels.{name}")
        return groups
    return {UNGROUPED: validate_label_list(labels, limits)}


class LabelEmbeddingCache:
    """Process-wide LRU cache of label embeddings keyed by (model, label text).

    Repeated requests with the same labels embed only their inputs. Thread-safe.
    """

    def __init__(self, maxsize: int = 4096) -> None:
        self._lru: LRU[tuple[str, str], tuple[FloatArray, int]] = LRU(maxsize)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._lru)

    def embed(self, embedder: Embedder, labels: Sequence[str]) -> tuple[FloatArray, list[int]]:
        """Embeddings ``(len(labels), dim)`` and token counts of ``labels``, embedding only misses."""
        model = embedder.manifest.name
        cached = self._lru.get_many((model, label) for label in labels)
        found = {label: item for (_, label), item in cached.items()}
        missing = [label for label in dict.fromkeys(labels) if label not in found]
        self.hits += len(labels) - len(missing)
        self.misses += len(missing)
        if missing:
            batch = embedder.embed(missing, role="label")
            for label, vector, tokens in zip(missing, batch.vectors, batch.token_counts, strict=True):
                found[label] = (np.array(vector, dtype=np.float32), int(tokens))
            self._lru.put_many(((model, label), found[label]) for label in missing)
        vectors = np.stack([found[label][0] for label in labels]).astype(np.float32)
        return vectors, [found[label][1] for label in labels]


def zeroshot_label_vectors(
    cache: LabelEmbeddingCache, embedder: Embedder, labels: Sequence[str]
) -> tuple[FloatArray, list[int]]:
    """Embeddings ``(len(labels), dim)`` the zero-shot scorer compares inputs with, in label order,
    and the tokens read for each: the embeddings of :func:`distinctive_labels` ``(labels)``, through
    ``cache`` (keyed by the text actually embedded, so the key covers what changes the vector)."""
    return cache.embed(embedder, distinctive_labels(labels))


def zeroshot_logits(
    input_vectors: FloatArray, labels: Sequence[str], embedder: Embedder, cache: LabelEmbeddingCache
) -> FloatArray:
    """Zero-shot scores ``(n_inputs, len(labels))`` before the softmax: cosine similarity of each
    input vector to each label's distinctive-part embedding (:func:`zeroshot_label_vectors`).

    ``softmax(zeroshot_logits(...), manifest.temperature)`` is what ``/v1/classify`` returns for one
    label group. Stateless: a row depends only on its own input vector and the label texts."""
    vectors, _ = zeroshot_label_vectors(cache, embedder, labels)
    return cosine_similarity(input_vectors, vectors)


@dataclass(frozen=True)
class GroupScores:
    labels: list[str]
    probabilities: FloatArray  # (n_inputs, n_labels), rows sum to 1


def score_groups(
    input_vectors: FloatArray,
    group_vectors: dict[str, FloatArray],
    group_labels: dict[str, list[str]],
    temperature: float,
) -> dict[str, GroupScores]:
    """Softmax over cosine similarities, independently per label group."""
    return {
        name: GroupScores(
            labels=group_labels[name],
            probabilities=softmax(cosine_similarity(input_vectors, vectors), temperature),
        )
        for name, vectors in group_vectors.items()
    }
