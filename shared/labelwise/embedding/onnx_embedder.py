"""OnnxEmbedder: the runtime adapter (onnxruntime InferenceSession + HF tokenizers).

Long inputs are split into windows of ``window - 2`` content tokens, each wrapped in
``cls ... sep``; a text's vector is the content-token-weighted mean of its window vectors,
re-normalised. Inputs longer than ``manifest.max_input_tokens`` (tokens actually read, special
tokens included) are truncated and flagged. Windows of a call are sorted by length and batched
to cut padding. Before each onnxruntime call the request's deadline is checked
(:func:`labelwise.embedding.budget.check_deadline`). Nothing here imports ``onnx`` or
:mod:`labelwise.modelbuild`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.embedding.budget import check_deadline
from labelwise.embedding.manifest import ModelManifest
from labelwise.embedding.port import EmbeddingBatch, Role, Truncate
from labelwise.embedding.session import cpu_session
from labelwise.errors import EmbedderUnavailable, InputTooLong

MODEL_FILE = "model.onnx"
#: The graph's weights, beside it (ONNX external data). onnxruntime maps this file instead of parsing
#: the weights out of the protobuf, which takes about a third off session creation (docs/performance.md).
MODEL_DATA_FILE = "model.onnx.data"
TOKENIZER_FILE = "tokenizer.json"
#: Windows per onnxruntime call when neither the caller nor the manifest says (``ModelManifest.batch_size``:
#: 1 for a model whose answers must not depend on batch-mates under dynamic int8).
DEFAULT_BATCH_SIZE = 8


@dataclass(frozen=True)
class _Window:
    text: int
    ids: npt.NDArray[np.int64]  # cls + content + sep
    weight: int  # content tokens (at least 1)


def max_content_tokens(max_input_tokens: int, window: int) -> int:
    """Most content tokens whose windows (each ``window - 2`` content + 2 specials) read at most
    ``max_input_tokens`` tokens in total."""
    full, rest = divmod(max_input_tokens, window)
    return full * (window - 2) + max(rest - 2, 0)


def tokens_read(n_content: int, window: int) -> int:
    per = window - 2
    n_windows = max(1, -(-n_content // per))
    return n_content + 2 * n_windows


def is_pre_optimised(manifest: ModelManifest, model_dir: Path, model_file: str, ort_version: str) -> bool:
    """Whether ``model_dir/model_file`` is the graph the build saved already optimised by this
    onnxruntime, so the session can skip optimisation (about half of session creation). Anything
    else (another onnxruntime, or another graph such as the build cache's float one) is optimised
    at load."""
    return (
        manifest.optimized_for == f"onnxruntime-{ort_version}"
        and (model_dir / model_file).resolve() == (model_dir / MODEL_FILE).resolve()
    )


class OnnxEmbedder:
    """Implements :class:`labelwise.embedding.port.Embedder`. Thread-safe; create once per process."""

    def __init__(
        self, session: Any, tokenizer: Any, manifest: ModelManifest, *, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> None:
        if manifest.window < 3:
            raise ValueError("window must leave room for content between the special tokens")
        self._session = session
        self._tokenizer = tokenizer
        self._manifest = manifest
        self._batch_size = max(1, batch_size)
        self._per_window = manifest.window - 2
        self._max_content = max_content_tokens(manifest.max_input_tokens, manifest.window)

    @classmethod
    def from_dir(
        cls,
        model_dir: Path,
        *,
        intra_op_threads: int | None = None,
        batch_size: int | None = None,
        model_file: str = MODEL_FILE,
        providers: Sequence[str] | None = None,
    ) -> OnnxEmbedder:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer

            manifest = ModelManifest.load(model_dir)
            # Flush denormals: the masked attention softmax was 19% of MiniLM's time without it.
            session = cpu_session(
                model_dir / model_file,
                intra_op_threads=intra_op_threads,
                optimise=not is_pre_optimised(manifest, model_dir, model_file, ort.__version__),
                flush_denormals=True,
                providers=providers,
            )
            tokenizer = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise EmbedderUnavailable(f"cannot load model from {model_dir}: {exc}") from exc
        except Exception as exc:  # onnxruntime raises its own exception types
            raise EmbedderUnavailable(f"cannot load model from {model_dir}: {exc}") from exc
        tokenizer.no_truncation()
        tokenizer.no_padding()
        return cls(session, tokenizer, manifest, batch_size=batch_size or manifest.batch_size)

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    @property
    def providers(self) -> list[str]:
        """The execution providers the session really uses (a CUDA provider that failed to load is absent)."""
        return list(self._session.get_providers())

    # ----------------------------------------------------------------- tokenising
    def _content(self, texts: Sequence[str], role: Role) -> list[list[int]]:
        prefix = self._manifest.prefixes.input if role == "input" else self._manifest.prefixes.label
        if not texts:
            return []
        encs = self._tokenizer.encode_batch([prefix + t for t in texts], add_special_tokens=False)
        return [list(e.ids) for e in encs]

    def count_tokens(self, texts: Sequence[str], role: Role) -> list[int]:
        return [
            tokens_read(min(len(c), self._max_content), self._manifest.window)
            for c in self._content(texts, role)
        ]

    def _fit(self, i: int, ids: list[int], role: Role, truncate: Truncate) -> tuple[list[int], bool]:
        """The content ids the model will read for text ``i``, and whether some were dropped."""
        if truncate == "pool":
            return ids[: self._max_content], len(ids) > self._max_content
        if len(ids) <= self._per_window:
            return ids, False
        if truncate == "none":
            raise InputTooLong(
                f"Input {i} is too long: {len(ids) + 2} tokens, and the model reads at most "
                f"{self._manifest.window} at once (truncation was disabled)."
            )
        if truncate == "end":
            return ids[: self._per_window], True
        keep = self._prefix_length(role)  # "start": keep the prefix, drop the start of the text
        return ids[:keep] + ids[len(ids) - (self._per_window - keep) :], True

    def _prefix_length(self, role: Role) -> int:
        prefix = self._manifest.prefixes.input if role == "input" else self._manifest.prefixes.label
        if not prefix:
            return 0
        return min(len(self._tokenizer.encode(prefix, add_special_tokens=False).ids), self._per_window - 1)

    # ----------------------------------------------------------------- embedding
    def embed(self, texts: Sequence[str], role: Role, truncate: Truncate = "pool") -> EmbeddingBatch:
        m = self._manifest
        dim = m.dimension
        contents = self._content(list(texts), role)
        if not contents:
            return EmbeddingBatch(np.zeros((0, dim), np.float32), [], [])
        windows: list[_Window] = []
        counts: list[int] = []
        truncated: list[bool] = []
        for i, full in enumerate(contents):
            ids, cut = self._fit(i, full, role, truncate)
            truncated.append(cut)
            counts.append(tokens_read(len(ids), m.window))
            starts = range(0, max(len(ids), 1), self._per_window)
            for s in starts:
                chunk = ids[s : s + self._per_window]
                arr = np.empty(len(chunk) + 2, np.int64)
                arr[0], arr[-1] = m.cls_token_id, m.sep_token_id
                arr[1:-1] = chunk
                windows.append(_Window(i, arr, max(len(chunk), 1)))

        order = sorted(range(len(windows)), key=lambda j: len(windows[j].ids))
        acc = np.zeros((len(contents), dim), np.float64)
        for b0 in range(0, len(order), self._batch_size):
            batch = [windows[j] for j in order[b0 : b0 + self._batch_size]]
            seq = max(len(w.ids) for w in batch)
            batch_ids = np.full((len(batch), seq), m.pad_token_id, np.int64)
            mask = np.zeros((len(batch), seq), np.int64)
            for r, w in enumerate(batch):
                batch_ids[r, : len(w.ids)] = w.ids
                mask[r, : len(w.ids)] = 1
            check_deadline()  # between onnxruntime calls: a request past its budget stops here (504)
            try:
                (vecs,) = self._session.run(
                    ["sentence_embedding"], {"input_ids": batch_ids, "attention_mask": mask}
                )
            except Exception as exc:  # onnxruntime's exception types are not a public hierarchy
                raise EmbedderUnavailable(f"embedding model {m.name} failed: {exc}") from exc
            for r, w in enumerate(batch):
                acc[w.text] += w.weight * vecs[r]
        norms = np.linalg.norm(acc, axis=1, keepdims=True)
        out = (acc / np.maximum(norms, 1e-12)).astype(np.float32)
        return EmbeddingBatch(out, counts, truncated)
