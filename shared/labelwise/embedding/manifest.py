"""Model manifests: the facts about a built model that live beside its files.

A model directory holds ``model.onnx``, ``tokenizer.json`` and ``manifest.json`` (this model).
The manifest is written by the build recipe (:mod:`labelwise.modelbuild`) and read at cold start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_FILE = "manifest.json"


class Prefixes(BaseModel):
    """Text prepended before tokenising, per role (e5 expects ``query: `` / ``passage: ``)."""

    model_config = ConfigDict(frozen=True)

    input: str = Field(default="", description="Prefix for texts being classified.")
    label: str = Field(default="", description="Prefix for label texts.")


class ImagePreprocessing(BaseModel):
    """How an image model's input is prepared from a decoded RGB ``uint8 [H, W, 3]`` array: resize
    the short side to ``resize`` (``interpolation``), centre-crop ``size`` x ``size``, scale to
    [0, 1], then ``(x - mean) / std`` per channel (RGB order)."""

    model_config = ConfigDict(frozen=True)

    size: int = Field(default=224, description="Side of the square crop the model reads.")
    resize: int = Field(default=256, description="Short side after resizing, before the centre crop.")
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)


class ModelManifest(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())

    name: str = Field(description="Canonical model name, e.g. 'multilingual-e5-small'.")
    aliases: tuple[str, ...] = Field(default=(), description="Other names accepted in requests.")
    family: Literal["xlm-roberta", "bert", "efficientnet", "clip"] = Field(
        description="Encoder family the graph was built from."
    )
    modality: Literal["text", "image"] = "text"
    dimension: int = Field(
        description="Embedding dimension (image models: of the vectors compared with text)."
    )
    window: int = Field(default=0, description="Tokens per forward pass, special tokens included.")
    max_input_tokens: int = Field(
        default=8192,
        description="Longer inputs are truncated to this many tokens (and the response says so).",
    )
    prefixes: Prefixes = Field(default_factory=Prefixes)
    pooling: Literal["mean"] = "mean"
    normalized: bool = Field(default=True, description="The graph L2-normalises its output.")
    cls_token_id: int = Field(default=0, description="Id of <s>/[CLS] wrapped around each window.")
    sep_token_id: int = Field(default=0, description="Id of </s>/[SEP] closing each window.")
    pad_token_id: int = Field(default=0, description="Id used for padding.")
    image: ImagePreprocessing | None = Field(default=None, description="Image models: input preprocessing.")
    feature_dimension: int = Field(default=0, description="Image models: dimension of few-shot features.")
    text_model: str = Field(
        default="",
        description="Image models without a text tower: text model of the zero-shot space (ConSE).",
    )
    temperature: float = Field(
        default=0.05,
        description="Softmax temperature over cosine similarities, chosen by calibration (make eval).",
    )
    quantization: str = Field(default="int8-dynamic-per-channel", description="How model.onnx was quantised.")
    optimized_for: str = Field(
        default="",
        description="`onnxruntime-<version>` when model.onnx was saved already optimised (extended level) "
        "by that onnxruntime: the same version then loads it without re-optimising (faster cold start).",
    )
    license: str = ""
    source: str = Field(default="", description="Where the weights came from (package==version/path).")
    files: dict[str, str] = Field(default_factory=dict, description="sha256 of each file in the directory.")
    recipe: dict[str, str] = Field(default_factory=dict, description="Recipe inputs (the build cache key).")

    @classmethod
    def load(cls, model_dir: Path) -> ModelManifest:
        return cls.model_validate(json.loads((model_dir / MANIFEST_FILE).read_text(encoding="utf-8")))

    def save(self, model_dir: Path) -> None:
        (model_dir / MANIFEST_FILE).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
