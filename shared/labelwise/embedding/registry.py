"""Model registry: resolves a requested model name or alias to one embedder per process."""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from labelwise.embedding.budget import check_deadline
from labelwise.embedding.manifest import MANIFEST_FILE, ModelManifest
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.embedding.port import Embedder, EmbeddingBatch, Role, Truncate
from labelwise.errors import EmbedderUnavailable, ModelNotFound
from labelwise.request_context import record_model, record_tokens

EmbedderFactory = Callable[[Path], Embedder]

#: Hosted embedding models' names (Jina's classifier API model list, Cohere's embed models) that no
#: built model claims in its manifest: they resolve to the deployment's default text model (the
#: multilingual e5 unless configured otherwise), so code written for those APIs runs unchanged.
#: Glob patterns, case-insensitive.
#: The response's ``model`` always names the model that actually answered.
HOSTED_MODEL_ALIASES = (
    "jina-embeddings-v3",
    "jina-embeddings-v4",
    "jina-embeddings-v5-text-nano",
    "jina-embeddings-v5-text-small",
    "jina-embeddings-v2-base-*",
    "jina-code-embeddings-0.5b",
    "jina-code-embeddings-1.5b",
    "embed-multilingual-*",
    "embed-english-*",
    "embed-v4.0",
)


def _onnx_factory(model_dir: Path) -> Embedder:
    return OnnxEmbedder.from_dir(model_dir)


class MeteredEmbedder:
    """Delegates to an embedder and counts the tokens it embeds toward the current request's quota;
    checks the request's deadline before each call (:class:`~labelwise.errors.RequestTimeout`)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner

    @property
    def manifest(self) -> ModelManifest:
        return self.inner.manifest

    def embed(self, texts: Sequence[str], role: Role, truncate: Truncate = "pool") -> EmbeddingBatch:
        check_deadline()
        batch = self.inner.embed(texts, role, truncate)
        record_tokens(batch.total_tokens)
        return batch

    def count_tokens(self, texts: Sequence[str], role: Role) -> list[int]:
        return self.inner.count_tokens(texts, role)


class ModelRegistry:
    """Knows the built models under ``model_dir`` and creates each embedder once, on first use.

    Names resolve in this order: canonical name, exact alias, glob alias (``jina-embeddings-v2-base-*``).
    Matching is case-insensitive.
    """

    def __init__(
        self,
        manifests: dict[str, tuple[ModelManifest, Path]],
        default_model: str,
        factory: EmbedderFactory = _onnx_factory,
    ) -> None:
        self._manifests = manifests
        self._default = default_model
        self._factory = factory
        self._embedders: dict[str, Embedder] = {}
        self._lock = threading.Lock()

    @classmethod
    def discover(
        cls, model_dir: Path, default_model: str, factory: EmbedderFactory = _onnx_factory
    ) -> ModelRegistry:
        manifests: dict[str, tuple[ModelManifest, Path]] = {}
        if model_dir.is_dir():
            for manifest_path in sorted(model_dir.glob(f"*/{MANIFEST_FILE}")):
                if manifest_path.parent.name.startswith("."):
                    continue  # a build in progress (".<name>.building")
                manifest = ModelManifest.load(manifest_path.parent)
                if manifest.modality != "text":
                    continue  # image models are served by the image side
                manifests[manifest.name] = (manifest, manifest_path.parent)
        return cls(manifests, default_model, factory)

    @classmethod
    def from_embedders(cls, embedders: list[Embedder], default_model: str | None = None) -> ModelRegistry:
        """A registry over ready-made embedders (tests, benchmarks)."""
        manifests = {e.manifest.name: (e.manifest, Path()) for e in embedders}
        registry = cls(manifests, default_model or embedders[0].manifest.name)
        registry._embedders = {e.manifest.name: MeteredEmbedder(e) for e in embedders}
        return registry

    def add(self, embedder: Embedder) -> None:
        """Serve a ready-made embedder too (a configured CLIP model's text tower)."""
        self._manifests[embedder.manifest.name] = (embedder.manifest, Path())
        self._embedders[embedder.manifest.name] = MeteredEmbedder(embedder)

    @property
    def available(self) -> list[str]:
        return sorted(self._manifests)

    @property
    def default_model(self) -> str:
        return self._default

    def resolve_name(self, requested: str | None) -> str:
        """Canonical model name for ``requested`` (None means the default)."""
        wanted = (requested or self._default).strip()
        lowered = wanted.lower()
        for name in self._manifests:
            if name.lower() == lowered:
                return name
        for name, (manifest, _) in self._manifests.items():
            if any(alias.lower() == lowered for alias in manifest.aliases):
                return name
        for name, (manifest, _) in self._manifests.items():
            if any(fnmatch.fnmatchcase(lowered, alias.lower()) for alias in manifest.aliases):
                return name
        if self._manifests and any(fnmatch.fnmatchcase(lowered, p) for p in HOSTED_MODEL_ALIASES):
            return self._stand_in()
        available = ", ".join(self.available) or "none (run `make model`)"
        raise ModelNotFound(f"Model '{wanted}' not found. Available models: {available}.")

    def _stand_in(self) -> str:
        """The model that answers for a hosted model name: the default, else the first built one."""
        return self._default if self._default in self._manifests else sorted(self._manifests)[0]

    def manifest(self, requested: str | None) -> ModelManifest:
        return self._manifests[self.resolve_name(requested)][0]

    def get(self, requested: str | None) -> Embedder:
        name = self.resolve_name(requested)
        record_model(name)
        embedder = self._embedders.get(name)
        if embedder is not None:
            return embedder
        with self._lock:
            embedder = self._embedders.get(name)
            if embedder is None:
                try:
                    embedder = MeteredEmbedder(self._factory(self._manifests[name][1]))
                except (OSError, RuntimeError) as exc:
                    raise EmbedderUnavailable(f"Model '{name}' could not be loaded.") from exc
                self._embedders[name] = embedder
        return embedder
