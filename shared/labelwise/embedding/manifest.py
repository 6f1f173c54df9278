"""Model manifests: the facts about a built model that live beside its files.

A model directory holds ``model.onnx`` (weights in ``model.onnx.data``), ``tokenizer.json`` and
``manifest.json`` (this model).
The manifest is written by the build recipe (:mod:`labelwise.modelbuild`) and read at cold start.

The manifest is an internal file format, not part of the API contract, so it is plain frozen
dataclasses checked by :func:`from_dict` rather than pydantic models: the embedder's import path
then never imports pydantic, which is about a fifth of a cold start (``make bench``;
docs/performance.md). Reading is strict about types (a wrong type or an unknown ``family`` raises
:class:`ManifestError`, a ``ValueError``) and lenient about unknown keys, so a manifest written by a
newer build still loads.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

MANIFEST_FILE = "manifest.json"

T = TypeVar("T")


class ManifestError(ValueError):
    """A manifest that does not describe a model (wrong type, missing field, unknown value)."""


@dataclass(frozen=True)
class Prefixes:
    """Text prepended before tokenising, per role (e5 expects ``query: `` / ``passage: ``)."""

    input: str = ""  # prefix for texts being classified
    label: str = ""  # prefix for label texts


@dataclass(frozen=True)
class ImagePreprocessing:
    """How an image model's input is prepared from a decoded RGB ``uint8 [H, W, 3]`` array: resize
    the short side to ``resize`` (``interpolation``), centre-crop ``size`` x ``size``, scale to
    [0, 1], then ``(x - mean) / std`` per channel (RGB order)."""

    size: int = 224  # side of the square crop the model reads
    resize: int = 256  # short side after resizing, before the centre crop
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ModelManifest:
    #: Canonical model name, e.g. 'multilingual-e5-small'.
    name: str
    #: Encoder family the graph was built from.
    family: Literal["xlm-roberta", "bert", "efficientnet", "clip"]
    #: Embedding dimension (image models: of the vectors compared with text).
    dimension: int
    #: Other names accepted in requests.
    aliases: tuple[str, ...] = ()
    modality: Literal["text", "image"] = "text"
    #: Tokens per forward pass, special tokens included.
    window: int = 0
    #: Longer inputs are truncated to this many tokens (and the response says so).
    max_input_tokens: int = 8192
    prefixes: Prefixes = field(default_factory=Prefixes)
    pooling: Literal["mean"] = "mean"
    #: The graph L2-normalises its output.
    normalized: bool = True
    #: Id of <s>/[CLS] wrapped around each window.
    cls_token_id: int = 0
    #: Id of </s>/[SEP] closing each window.
    sep_token_id: int = 0
    #: Id used for padding.
    pad_token_id: int = 0
    #: Image models: input preprocessing.
    image: ImagePreprocessing | None = None
    #: Image models: dimension of few-shot features.
    feature_dimension: int = 0
    #: Image models without a text tower: text model of the zero-shot space (ConSE).
    text_model: str = ""
    #: Softmax temperature over cosine similarities, chosen by calibration (make eval).
    temperature: float = 0.05
    #: How model.onnx was quantised.
    quantization: str = "int8-dynamic-per-channel"
    #: Windows per onnxruntime call. Dynamic int8 picks one activation scale per call, so with more
    #: than one a text's vector moves with its batch-mates (about 1 in 80 zero-shot answers flipped
    #: at 8); 1 makes every text's answer independent of the rest of its request.
    batch_size: int = 8
    #: ``onnxruntime-<version>`` when model.onnx was saved already optimised (extended level) by that
    #: onnxruntime: the same version then loads it without re-optimising (faster cold start).
    optimized_for: str = ""
    license: str = ""
    #: Where the weights came from (package==version/path).
    source: str = ""
    #: sha256 of each file in the directory.
    files: dict[str, str] = field(default_factory=dict)
    #: Recipe inputs (the build cache key).
    recipe: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The same checks (and list -> tuple conversions) whether built in code or read from a file.
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = _convert(hints[f.name], getattr(self, f.name), f"{type(self).__name__}.{f.name}")
            object.__setattr__(self, f.name, value)

    @classmethod
    def from_dict(cls, data: Any) -> ModelManifest:
        return from_dict(cls, data)

    @classmethod
    def load(cls, model_dir: Path) -> ModelManifest:
        try:
            data = json.loads((model_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{model_dir / MANIFEST_FILE}: not JSON: {exc}") from exc
        return from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tuples become lists, nested dataclasses dicts."""
        out: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self)))
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def replace(self, **changes: Any) -> ModelManifest:
        return dataclasses.replace(self, **changes)

    def save(self, model_dir: Path) -> None:
        (model_dir / MANIFEST_FILE).write_text(self.to_json() + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------ checking
def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from a JSON object, converting lists to tuples and nested objects to
    dataclasses. Raises :class:`ManifestError` naming the offending field."""
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object, got {type(data).__name__}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _convert(hints[f.name], data[f.name], f"{where}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ManifestError(f"{where}.{f.name}: missing")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ManifestError(f"{where}: {exc}") from exc


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` (parsed JSON) as type ``tp``, or :class:`ManifestError`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(inner, value, where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ManifestError(f"{where}: expected a list, got {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ManifestError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(
            _convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: expected an object, got {type(value).__name__}")
        return {
            _convert(args[0], k, f"{where} key"): _convert(args[1], v, f"{where}[{k!r}]")
            for k, v in value.items()
        }
    _check_scalar(tp, value, where)
    return float(value) if tp is float else value


def _check_scalar(tp: Any, value: Any, where: str) -> None:
    if typing.get_origin(tp) is Literal:
        if value not in typing.get_args(tp):
            allowed = ", ".join(repr(a) for a in typing.get_args(tp))
            raise ManifestError(f"{where}: {value!r} is not one of {allowed}")
        return
    ok = (
        isinstance(value, bool)
        if tp is bool
        else isinstance(value, int) and not isinstance(value, bool)
        if tp is int
        else isinstance(value, int | float) and not isinstance(value, bool)
        if tp is float
        else isinstance(value, tp)
    )
    if not ok:
        raise ManifestError(f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
