"""Wire format of the embedding endpoint (``POST /invocations``), version 1. Documented in docs/endpoint.md.

Both sides (the server in :mod:`labelwise.endpoint.container`, the adapter in
:mod:`labelwise.endpoint.client`) use these models, so they cannot drift. Vectors travel as base64
of little-endian float32, row-major (``encoding="base64"``, the default: 4/3 the size of the floats
instead of ~10x for JSON numbers), or as nested lists (``encoding="list"``, for humans and curl).
Errors carry the labelwise error code, so a 400 from the endpoint (text too long, unknown model,
bad image) surfaces to the API caller as the same domain error it would have been in-process.
"""

from __future__ import annotations

import base64
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from labelwise import errors

PROTOCOL_VERSION = 1
CONTENT_TYPE = "application/json"

Op = Literal["embed", "count_tokens", "describe"]
Kind = Literal["text", "image"]
ImageTask = Literal["zero_shot", "features"]
Encoding = Literal["base64", "list"]


class InvocationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    version: int = Field(default=PROTOCOL_VERSION, description="Protocol version; the server refuses others.")
    op: Op = Field(
        default="embed", description="`embed`, `count_tokens` (texts only) or `describe` (models)."
    )
    kind: Kind = Field(default="text", description="`text` or `image`.")
    model: str | None = Field(default=None, description="Model name or alias; default: the server's default.")
    role: Literal["input", "label"] = Field(
        default="input", description="Texts: which prefix the model adds."
    )
    truncate: Literal["pool", "end", "start", "none"] = Field(
        default="pool", description="Texts: long-text mode."
    )
    task: ImageTask = Field(default="zero_shot", description="Images: `zero_shot` vectors or `features`.")
    inputs: list[str] = Field(default_factory=list, description="Texts, or base64-encoded image files.")
    encoding: Encoding = Field(default="base64", description="How `vectors` is returned.")


class InvocationResponse(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    version: int = PROTOCOL_VERSION
    model: str = Field(description="Canonical model name that answered.")
    provider: str = Field(description="onnxruntime execution provider that ran it.")
    dimension: int
    count: int
    encoding: Encoding = "base64"
    vectors: str | list[list[float]] | None = Field(default=None, description="Absent for `count_tokens`.")
    token_counts: list[int] = Field(
        default_factory=list, description="Tokens read per input (images: the image model's units)."
    )
    truncated: list[bool] = Field(default_factory=list)


class ModelInfo(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    name: str
    kind: Kind
    dimension: int | None = None
    manifest: dict[str, object] | None = Field(default=None, description="Text models: their ModelManifest.")


class DescribeResponse(BaseModel):
    version: int = PROTOCOL_VERSION
    provider: str
    default_model: str | None
    models: list[ModelInfo]


class ErrorBody(BaseModel):
    code: str
    detail: str


class ErrorResponse(BaseModel):
    version: int = PROTOCOL_VERSION
    error: ErrorBody


def encode_vectors(vectors: npt.NDArray[np.float32], encoding: Encoding) -> str | list[list[float]]:
    array = np.ascontiguousarray(vectors, dtype="<f4")
    if encoding == "list":
        return [[float(x) for x in row] for row in array]
    return base64.b64encode(array.tobytes()).decode("ascii")


def decode_vectors(response: InvocationResponse) -> npt.NDArray[np.float32]:
    """The ``(count, dimension)`` float32 matrix of a response; ValueError if it does not fit."""
    shape = (response.count, response.dimension)
    if isinstance(response.vectors, str):
        raw = base64.b64decode(response.vectors, validate=True)
        if len(raw) != 4 * shape[0] * shape[1]:
            raise ValueError(f"vectors hold {len(raw)} bytes, expected {4 * shape[0] * shape[1]}")
        return np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
    if response.vectors is None:
        raise ValueError("response has no vectors")
    array = np.asarray(response.vectors, dtype=np.float32).reshape(shape)
    return array


def _all_subclasses(cls: type[errors.LabelwiseError]) -> list[type[errors.LabelwiseError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_all_subclasses(sub))
    return out


def input_error_for(code: str, detail: str) -> errors.InvalidInput | None:
    """The InvalidInput subclass with ``code``, or None when no input error has that code."""
    for cls in _all_subclasses(errors.InvalidInput):
        if cls.code == code:
            error = cls(detail)
            assert isinstance(error, errors.InvalidInput)
            return error
    return None


def error_from_response(status: int, body: bytes | str) -> errors.LabelwiseError:
    """The domain error a non-200 endpoint answer stands for.

    4xx with a labelwise input-error code -> that InvalidInput subclass (the caller's fault, 400);
    anything else (5xx, unparseable, a 4xx about the protocol or the payload size, which would be
    this adapter's fault) -> EmbedderUnavailable (503).
    """
    try:
        parsed = ErrorResponse.model_validate_json(body)
    except ValueError:
        return errors.EmbedderUnavailable(f"The embedding endpoint answered HTTP {status}.")
    if 400 <= status < 500:
        input_error = input_error_for(parsed.error.code, parsed.error.detail)
        if input_error is not None:
            return input_error
    return errors.EmbedderUnavailable(
        f"The embedding endpoint answered HTTP {status} ({parsed.error.code}): {parsed.error.detail}"
    )
