"""CLIP models supplied by the deployer: image tower + text tower (ONNX) + CLIP's BPE tokenizer.

A CLIP model directory holds:

- ``vision_model.onnx`` (or ``onnx/vision_model.onnx``): input ``pixel_values`` float32
  ``[batch, 3, S, S]``; output ``image_embeds`` ``[batch, D]`` (else its first output);
- ``text_model.onnx`` (or ``onnx/text_model.onnx``): input ``input_ids`` int64 ``[batch, seq]``
  (``attention_mask`` too if the graph declares it); output ``text_embeds`` ``[batch, D]`` (else its
  first output). Hugging Face / Optimum exports of ``CLIPVisionModelWithProjection`` and
  ``CLIPTextModelWithProjection`` have exactly these names;
- the tokenizer: OpenAI's ``bpe_simple_vocab_16e6.txt.gz`` (ships in the ``open-clip-torch`` wheel)
  or the Hugging Face ``merges.txt`` (the same merges; the vocabulary is derived from them);
- ``manifest.json`` (family ``clip``, modality ``image``), or, for a Hugging Face layout,
  ``config.json`` + ``preprocessor_config.json`` from which :func:`manifest_from_hf` derives one.

:func:`resolve_clip_source` turns a configured source into such a directory: a local path, an
``s3://bucket/prefix`` URI (downloaded once with boto3, by :mod:`labelwise.embedding.s3_source`),
or a Hugging Face hub id (``hf://org/name[@revision]``, downloaded once over HTTPS with urllib).

Text is cleaned like OpenAI's ``simple_tokenizer`` (HTML unescaped twice, whitespace collapsed,
lower-cased; ``ftfy`` is not applied), wrapped as ``<|startoftext|> ... <|endoftext|>`` and cut to
the 77-token context (``truncate="pool"``/``"end"`` keep the start, ``"start"`` keeps the end,
``"none"`` refuses). Images count :data:`labelwise.embedding.image.IMAGE_TOKENS` each.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import re
import tempfile
import threading
import unicodedata
import urllib.parse
import urllib.request
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from labelwise.embedding.image import (
    DEFAULT_IMAGE_BATCH,
    FEATURE_MEAN_FILE,
    IMAGE_TOKENS,
    l2_normalise,
    preprocess_batch,
)
from labelwise.embedding.manifest import MANIFEST_FILE, ImagePreprocessing, ModelManifest, Prefixes
from labelwise.embedding.port import EmbeddingBatch, Role, Truncate
from labelwise.embedding.session import cpu_session
from labelwise.errors import EmbedderUnavailable, InputTooLong

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
MERGES_FILE = "merges.txt"
VISION_FILES = ("vision_model.onnx", "onnx/vision_model.onnx")
TEXT_FILES = ("text_model.onnx", "onnx/text_model.onnx")
SOT = "<|startoftext|>"
EOT = "<|endoftext|>"
CONTEXT_LENGTH = 77
#: OpenAI's merges file holds more lines than CLIP uses; CLIP keeps the first 49152 - 256 - 2.
N_MERGES = 49152 - 256 - 2
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_PREFIXES = Prefixes(input="", label="a photo of ")
HF_ENDPOINT = "https://huggingface.co"
HF_FILES = (
    "onnx/vision_model.onnx",
    "onnx/text_model.onnx",
    "merges.txt",
    "config.json",
    "preprocessor_config.json",
)

F32 = npt.NDArray[np.float32]


# ------------------------------------------------------------------------------ tokenizer
@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode character map."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


def pre_tokenize(text: str) -> list[str]:
    """Split cleaned text like CLIP's regex ``<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|
    [\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+`` (first matching alternative at each position)."""

    def kind(ch: str) -> str:
        if ch.isspace():
            return "space"
        cat = unicodedata.category(ch)
        return "letter" if cat[0] == "L" else "number" if cat[0] == "N" else "other"

    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        for special in (SOT, EOT):
            if text.startswith(special, i):
                out.append(special)
                i += len(special)
                break
        else:
            if text[i] == "'":
                match = next((c for c in _CONTRACTIONS if text[i + 1 : i + 1 + len(c)].lower() == c), None)
                if match is not None:
                    out.append(text[i : i + 1 + len(match)])
                    i += 1 + len(match)
                    continue
            k = kind(text[i])
            if k == "space":
                i += 1
            elif k == "number":
                out.append(text[i])
                i += 1
            else:
                j = i + 1
                while j < n and kind(text[j]) == k:
                    j += 1
                out.append(text[i:j])
                i = j
    return out


def clean_text(text: str) -> str:
    text = html.unescape(html.unescape(text)).strip()
    return re.sub(r"\s+", " ", text).strip().lower()


class ClipTokenizer:
    """CLIP's byte-level BPE (OpenAI ``simple_tokenizer``), from the merges list alone.

    Vocabulary: the 256 byte characters, the same with ``</w>``, one entry per merge (in rank
    order), then ``<|startoftext|>`` and ``<|endoftext|>`` (49406, 49407 for the standard file).
    """

    def __init__(self, merges: Sequence[tuple[str, str]]) -> None:
        byte_chars = list(bytes_to_unicode().values())
        vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges] + [SOT, EOT]
        self.encoder: dict[str, int] = {t: i for i, t in enumerate(vocab)}
        self.decoder: dict[int, str] = dict(enumerate(vocab))
        self.ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(merges)}
        self.sot_id = self.encoder[SOT]
        self.eot_id = self.encoder[EOT]
        self._byte_encoder = bytes_to_unicode()
        self._byte_decoder = {v: k for k, v in self._byte_encoder.items()}
        self._cache: dict[str, list[str]] = {SOT: [SOT], EOT: [EOT]}
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path) -> ClipTokenizer:
        """``bpe_simple_vocab_16e6.txt.gz`` (OpenAI) or ``merges.txt`` (Hugging Face)."""
        raw = path.read_bytes()
        text = gzip.decompress(raw).decode("utf-8") if raw[:2] == b"\x1f\x8b" else raw.decode("utf-8")
        lines = text.split("\n")
        if lines and "#version" in lines[0]:  # OpenAI's reads "bpe_simple_vocab_16e6.txt#version: 0.2"
            lines = lines[1:]
        merges = [tuple(line.split()) for line in lines if line.strip()][:N_MERGES]
        bad = [m for m in merges if len(m) != 2]
        if bad:
            raise ValueError(f"{path.name}: malformed merge line {bad[0]!r}")
        return cls([(a, b) for a, b in merges])

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def bpe(self, token: str) -> list[str]:
        """BPE pieces of one pre-token (already byte-encoded), the last one ending in ``</w>``."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        word = [*token[:-1], token[-1] + "</w>"]
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            best = min(pairs, key=lambda p: self.ranks.get(p, 1 << 30))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    merged.append(word[i] + word[i + 1])
                    i += 2
                else:
                    merged.append(word[i])
                    i += 1
            word = merged
        with self._lock:
            if len(self._cache) < 100_000:
                self._cache[token] = word
        return word

    def encode(self, text: str) -> list[int]:
        """Content token ids of ``text`` (no start/end tokens)."""
        ids: list[int] = []
        for tok in pre_tokenize(clean_text(text)):
            encoded = (
                tok if tok in (SOT, EOT) else "".join(self._byte_encoder[b] for b in tok.encode("utf-8"))
            )
            ids.extend(self.encoder[p] for p in self.bpe(encoded))
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (``</w>`` becomes a space; special tokens kept as text)."""
        out = bytearray()
        for c in "".join(self.decoder[i] for i in ids).replace("</w>", " "):
            if c in self._byte_decoder:
                out.append(self._byte_decoder[c])
            else:
                out.extend(c.encode("utf-8"))
        return out.decode("utf-8", errors="replace").strip()


# ------------------------------------------------------------------------------ model directory
def _first(model_dir: Path, names: Sequence[str]) -> Path:
    for n in names:
        if (model_dir / n).exists():
            return model_dir / n
    raise FileNotFoundError(f"none of {', '.join(names)} in {model_dir}")


def manifest_from_hf(model_dir: Path, name: str | None = None) -> ModelManifest:
    """A manifest for a Hugging Face CLIP layout (``config.json`` + ``preprocessor_config.json``)."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    pre_path = model_dir / "preprocessor_config.json"
    pre = json.loads(pre_path.read_text(encoding="utf-8")) if pre_path.exists() else {}

    def side(v: Any, default: int) -> int:
        if isinstance(v, dict):
            v = v.get("shortest_edge", v.get("height", default))
        return int(v) if v is not None else default

    size = side(pre.get("crop_size"), int(config.get("vision_config", {}).get("image_size", 224)))
    return ModelManifest(
        name=name or model_dir.name,
        family="clip",
        modality="image",
        dimension=int(config.get("projection_dim", 512)),
        feature_dimension=int(config.get("projection_dim", 512)),
        window=int(config.get("text_config", {}).get("max_position_embeddings", CONTEXT_LENGTH)),
        max_input_tokens=int(config.get("text_config", {}).get("max_position_embeddings", CONTEXT_LENGTH)),
        prefixes=CLIP_PREFIXES,
        image=ImagePreprocessing(
            size=size,
            resize=side(pre.get("size"), size),
            interpolation="bicubic" if int(pre.get("resample", 3)) == 3 else "bilinear",
            mean=tuple(pre.get("image_mean", CLIP_MEAN)),
            std=tuple(pre.get("image_std", CLIP_STD)),
        ),
        quantization="as supplied",
        source=str(config.get("_name_or_path", "")),
    )


def load_clip_manifest(model_dir: Path, name: str | None = None) -> ModelManifest:
    if (model_dir / MANIFEST_FILE).exists():
        m = ModelManifest.load(model_dir)
        if m.family != "clip":
            raise ValueError(f"{model_dir} holds a {m.family} model, not clip")
        return m
    return manifest_from_hf(model_dir, name)


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


# ------------------------------------------------------------------------------ sources
def _download_dir(root: Path, source: str) -> Path:
    return root / "labelwise-clip" / hashlib.sha256(source.encode()).hexdigest()[:16]


def download_hub(
    repo: str, dest: Path, *, revision: str = "main", endpoint: str = HF_ENDPOINT, timeout: float = 60.0
) -> Path:
    """Download a Hugging Face CLIP ONNX export (``onnx/vision_model.onnx``, ``onnx/text_model.onnx``,
    ``merges.txt``, ``config.json``, ``preprocessor_config.json``) into ``dest`` over HTTPS."""
    for rel in HF_FILES:
        target = dest / rel
        if target.exists():
            continue
        url = f"{endpoint}/{urllib.parse.quote(repo)}/resolve/{urllib.parse.quote(revision)}/{rel}"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        try:
            req = urllib.request.Request(url, headers={"User-Agent": "labelwise"})
            with urllib.request.urlopen(req, timeout=timeout) as resp, tmp.open("wb") as fh:
                while chunk := resp.read(1 << 20):
                    fh.write(chunk)
            tmp.replace(target)
        except Exception as exc:  # urllib.error.URLError/HTTPError, OSError, timeouts
            tmp.unlink(missing_ok=True)
            raise EmbedderUnavailable(f"cannot download {url}: {exc}") from exc
    return dest


def resolve_clip_source(source: str, download_root: Path | None = None, *, s3_client: Any = None) -> Path:
    """A local directory holding the CLIP model named by ``source``: a local path, an
    ``s3://bucket/prefix`` URI, or ``hf://org/name[@revision]`` (also a bare ``org/name`` that is not
    an existing path). Downloads go to ``<download_root or tempdir>/labelwise-clip/<hash>`` once
    (a ``.complete`` marker records success)."""
    local = Path(source).expanduser()
    if not source.startswith(("s3://", "hf://")) and local.exists():
        return local
    dest = _download_dir(download_root or Path(tempfile.gettempdir()), source)
    marker = dest / ".complete"
    if marker.exists():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    if source.startswith("s3://"):
        from labelwise.embedding.s3_source import download_s3

        download_s3(source, dest, s3_client)
    else:
        repo = source.removeprefix("hf://")
        if repo.count("/") != 1:
            raise EmbedderUnavailable(f"CLIP source {source!r} is not a path, s3:// URI or hub id org/name")
        repo, _, revision = repo.partition("@")
        download_hub(repo, dest, revision=revision or "main")
    marker.write_text(source, encoding="utf-8")
    return dest


def load_clip(source: str, *, name: str | None = None, download_root: Path | None = None) -> ClipEmbedder:
    """:func:`resolve_clip_source` then :meth:`ClipEmbedder.from_dir`."""
    return ClipEmbedder.from_dir(resolve_clip_source(source, download_root), name=name)
