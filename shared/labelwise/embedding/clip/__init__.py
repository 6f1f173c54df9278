"""CLIP models supplied by the deployer: image tower + text tower (ONNX) + CLIP's BPE tokenizer.

- :mod:`~labelwise.embedding.clip.tokenizer`: the byte-level BPE tokenizer;
- :mod:`~labelwise.embedding.clip.manifest`: a model directory's manifest (its own, or derived from a
  Hugging Face layout);
- :mod:`~labelwise.embedding.clip.embedder`: :class:`ClipEmbedder`, the runtime model (text and
  image towers on onnxruntime);
- :mod:`~labelwise.embedding.clip.sources`: a configured source (path, ``s3://``, ``hf://``) to a
  local model directory, downloaded once.
"""

from labelwise.embedding.clip.embedder import ClipEmbedder
from labelwise.embedding.clip.manifest import CLIP_MEAN, CLIP_PREFIXES, CLIP_STD, load_clip_manifest
from labelwise.embedding.clip.sources import load_clip, resolve_clip_source
from labelwise.embedding.clip.tokenizer import CONTEXT_LENGTH, ClipTokenizer

__all__ = [
    "CLIP_MEAN",
    "CLIP_PREFIXES",
    "CLIP_STD",
    "CONTEXT_LENGTH",
    "ClipEmbedder",
    "ClipTokenizer",
    "load_clip",
    "load_clip_manifest",
    "resolve_clip_source",
]
