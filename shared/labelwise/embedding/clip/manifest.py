"""The manifest of a CLIP model directory: its own ``manifest.json`` (family ``clip``), or one derived
from a Hugging Face layout (``config.json`` + ``preprocessor_config.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labelwise.embedding.clip.tokenizer import CONTEXT_LENGTH
from labelwise.embedding.manifest import MANIFEST_FILE, ImagePreprocessing, ModelManifest, Prefixes

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_PREFIXES = Prefixes(input="", label="a photo of ")


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
