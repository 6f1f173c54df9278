"""Where a configured CLIP model comes from: :func:`resolve_clip_source` turns a source into a local
model directory: a local path, an ``s3://bucket/prefix`` URI (downloaded once with boto3, by
:mod:`labelwise.embedding.s3_source`), or a Hugging Face hub id (``hf://org/name[@revision]``,
downloaded once over HTTPS with urllib)."""

from __future__ import annotations

import hashlib
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from labelwise.embedding.clip.embedder import ClipEmbedder
from labelwise.embedding.s3_source import download_s3
from labelwise.errors import EmbedderUnavailable

HF_ENDPOINT = "https://huggingface.co"
HF_FILES = (
    "onnx/vision_model.onnx",
    "onnx/text_model.onnx",
    "merges.txt",
    "config.json",
    "preprocessor_config.json",
)


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
