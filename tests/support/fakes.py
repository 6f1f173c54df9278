"""In-memory fakes for unit tests of logic (never used by behaviour tests)."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labelwise.embedding.manifest import ModelManifest, Prefixes
from labelwise.embedding.port import EmbeddingBatch, Role, Truncate
from labelwise.errors import InputTooLong
from labelwise.settings import Settings

WORD = re.compile(r"\w+", re.UNICODE)


def fake_manifest(name: str = "fake-model", aliases: tuple[str, ...] = ("fake-*",)) -> ModelManifest:
    return ModelManifest(
        name=name,
        aliases=aliases,
        family="bert",
        dimension=64,
        window=16,
        max_input_tokens=40,
        prefixes=Prefixes(input="", label=""),
        cls_token_id=1,
        sep_token_id=2,
        pad_token_id=0,
        temperature=0.1,
    )


class HashingEmbedder:
    """Bag-of-words embedder: each word hashes to a fixed random unit vector; texts sum them.

    Texts sharing words are similar, so label logic can be tested without a model. Token count =
    words + 2 (like [CLS]/[SEP]); more than ``max_input_tokens`` words are truncated.
    """

    def __init__(self, manifest: ModelManifest | None = None) -> None:
        self._manifest = manifest or fake_manifest()
        self.calls: list[tuple[tuple[str, ...], Role]] = []

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    def _word_vector(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self._manifest.dimension)
        return v / np.linalg.norm(v)

    def _words(self, text: str) -> list[str]:
        return WORD.findall(text.lower())

    def count_tokens(self, texts: Sequence[str], role: Role) -> list[int]:
        return [min(len(self._words(t)), self._manifest.max_input_tokens) + 2 for t in texts]

    def embed(self, texts: Sequence[str], role: Role, truncate: Truncate = "pool") -> EmbeddingBatch:
        self.calls.append((tuple(texts), role))
        dim = self._manifest.dimension
        vectors = np.zeros((len(texts), dim), dtype=np.float32)
        truncated = []
        for i, text in enumerate(texts):
            words = self._words(text)
            limit = self._manifest.max_input_tokens if truncate == "pool" else self._manifest.window - 2
            if truncate == "none" and len(words) > limit:
                raise InputTooLong(f"Input {i} is too long.")
            truncated.append(len(words) > limit)
            words = words[-limit:] if truncate == "start" else words[:limit]
            v = sum((self._word_vector(w) for w in words), np.zeros(dim))
            norm = np.linalg.norm(v)
            vectors[i] = v / norm if norm > 0 else v
        return EmbeddingBatch(
            vectors=vectors, token_counts=self.count_tokens(texts, role), truncated=truncated
        )


def fake_model_settings(root: Path, *, quotas_off: bool = False) -> Settings:
    """Settings for the fake model with data, cache and models under ``root`` (quotas off on request)."""
    env = {
        "LABELWISE_DATA_DIR": str(root / "data"),
        "LABELWISE_CACHE_DIR": str(root / "cache"),
        "LABELWISE_MODEL_DIR": str(root / "models"),
        "LABELWISE_DEFAULT_MODEL": "fake-model",
    }
    if quotas_off:
        env |= {
            "LABELWISE_RATE_LIMIT_REQUESTS_PER_MINUTE": "0",
            "LABELWISE_RATE_LIMIT_TOKENS_PER_MINUTE": "0",
        }
    return Settings.from_environ(env)


class FakeStream(io.StringIO):
    """A text stream that says whether it is a terminal (``isatty``), for progress-bar tests."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty
