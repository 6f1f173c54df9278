"""EndpointEmbedder: the Embedder port (and the image embedder's two methods) over the embedding endpoint.

Two transports carry the same JSON (:mod:`labelwise.endpoint.protocol`):

- :class:`HttpTransport`: ``POST {url}/invocations`` (the server on localhost, tests, benchmarks);
- :class:`SageMakerTransport`: boto3 ``sagemaker-runtime`` ``invoke_endpoint`` (the deployed path).

Provider errors become :class:`labelwise.errors.EmbedderUnavailable` (``raise ... from exc``); an
endpoint's 4xx carrying a labelwise input-error code becomes that same error (e.g. InputTooLong).
Large calls are split so each request stays under SageMaker's 6 MB payload limit.
"""

from __future__ import annotations

import base64
import io
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from labelwise.embedding.manifest import ModelManifest
from labelwise.embedding.port import EmbeddingBatch, Role, Truncate
from labelwise.endpoint.protocol import (
    CONTENT_TYPE,
    DescribeResponse,
    ImageTask,
    InvocationRequest,
    InvocationResponse,
    decode_vectors,
    error_from_response,
)
from labelwise.errors import EmbedderUnavailable, LabelwiseError

logger = logging.getLogger(__name__)

#: Per request: SageMaker real-time invocations accept 6 MB; keep base64 and JSON overhead under it.
DEFAULT_MAX_REQUEST_BYTES = 5 * 1024 * 1024
#: Texts per request (the response, 4/3 x 4 bytes x dimension per text, stays well under 6 MB).
DEFAULT_MAX_TEXTS = 256
#: An image whose PNG exceeds the request budget is downscaled to this longest side first.
DOWNSCALE_SIDE = 1024

#: One call to the endpoint: 8 s to read and 2 s to connect, one attempt. API Gateway gives a request
#: 30 s; what the endpoint did not answer in time is embedded in-process with what is left.
DEFAULT_TIMEOUT_S = 8.0
CONNECT_TIMEOUT_S = 2.0

ImageInput = npt.NDArray[np.uint8] | bytes


class Transport(Protocol):
    """Sends one invocation body; answers the JSON body of a 200, raises a domain error otherwise."""

    name: str

    def invoke(self, body: bytes) -> bytes: ...


class HttpTransport:
    """``POST {base_url}/invocations`` with urllib (no proxies: the endpoint is local or in the VPC)."""

    name = "http"

    def __init__(self, base_url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = base_url.rstrip("/") + "/invocations"
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def invoke(self, body: bytes) -> bytes:
        request = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE}
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as exc:
            payload = exc.read() or b""
            raise error_from_response(exc.code, payload) from exc
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            raise EmbedderUnavailable(f"The embedding endpoint {self.url} is unreachable: {exc}") from exc


class SageMakerTransport:
    """boto3 ``sagemaker-runtime`` ``invoke_endpoint``; the client is created once (cold start)."""

    name = "sagemaker"

    def __init__(self, endpoint_name: str, client: Any) -> None:
        self.endpoint_name = endpoint_name
        self._client = client

    @classmethod
    def create(
        cls,
        endpoint_name: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        endpoint_url: str | None = None,
        session: Any = None,
    ) -> SageMakerTransport:
        """One attempt, ``timeout_s`` to read: a failed or slow endpoint costs at most about
        ``2 + timeout_s`` seconds of the API's 30 s budget, and the router then embeds in-process
        (``endpoint_fallback``) instead of retrying (issue 12, item 11)."""
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=timeout_s,
            retries={"total_max_attempts": 1, "mode": "standard"},
        )
        factory = session or boto3
        return cls(
            endpoint_name, factory.client("sagemaker-runtime", endpoint_url=endpoint_url, config=config)
        )

    def invoke(self, body: bytes) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.invoke_endpoint(
                EndpointName=self.endpoint_name, ContentType=CONTENT_TYPE, Accept=CONTENT_TYPE, Body=body
            )
            data: bytes = response["Body"].read()
            return data
        except ClientError as exc:
            err = exc.response.get("Error", {})
            # The container answered non-2xx: SageMaker relays its status and body as a ModelError
            # (botocore puts the modelled fields at the top of the response, older versions in Error).
            extra: dict[str, Any] = {**err, **exc.response}
            status, message = extra.get("OriginalStatusCode"), extra.get("OriginalMessage")
            if (
                err.get("Code") == "ModelError"
                and isinstance(status, int)
                and isinstance(message, str | bytes)
            ):
                raise error_from_response(status, message) from exc
            raise EmbedderUnavailable(
                f"SageMaker endpoint {self.endpoint_name} failed: {err.get('Code', 'error')}"
            ) from exc
        except BotoCoreError as exc:
            raise EmbedderUnavailable(
                f"SageMaker endpoint {self.endpoint_name} is unreachable: {exc}"
            ) from exc


def _png(image: npt.NDArray[np.uint8], max_side: int | None = None) -> bytes:
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8), mode="RGB")
    if max_side is not None and max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    picture.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class EndpointEmbedder:
    """Implements :class:`labelwise.embedding.port.Embedder` for one model served by the endpoint,
    plus ``zero_shot_vectors`` / ``features`` for images (mirroring the in-process image embedder).

    ``manifest`` is the local copy of the model's manifest (the Lambda has it in its layer); without
    one it is asked from the endpoint (``op="describe"``) on first use.
    """

    def __init__(
        self,
        transport: Transport,
        model: str | None = None,
        manifest: ModelManifest | None = None,
        *,
        image_model: str | None = None,
        max_texts: int = DEFAULT_MAX_TEXTS,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        self.transport = transport
        self.model = model or (manifest.name if manifest else None)
        self.image_model = image_model
        self._manifest = manifest
        self.max_texts = max(1, max_texts)
        self.max_request_bytes = max_request_bytes
        self.last_provider: str | None = None

    # -------------------------------------------------------------------------------- plumbing
    def _call(self, request: InvocationRequest) -> InvocationResponse:
        body = request.model_dump_json(exclude_defaults=False).encode("utf-8")
        raw = self.transport.invoke(body)
        try:
            response = InvocationResponse.model_validate_json(raw)
        except ValueError as exc:
            raise EmbedderUnavailable("The embedding endpoint answered something unreadable.") from exc
        self.last_provider = response.provider
        return response

    def describe(self) -> DescribeResponse:
        raw = self.transport.invoke(InvocationRequest(op="describe").model_dump_json().encode("utf-8"))
        try:
            return DescribeResponse.model_validate_json(raw)
        except ValueError as exc:
            raise EmbedderUnavailable("The embedding endpoint answered something unreadable.") from exc

    @property
    def manifest(self) -> ModelManifest:
        if self._manifest is None:
            described = self.describe()
            wanted = self.model or described.default_model
            for info in described.models:
                if info.kind == "text" and info.manifest is not None and info.name == wanted:
                    self._manifest = ModelManifest.from_dict(info.manifest)
                    break
            else:
                raise EmbedderUnavailable(f"The embedding endpoint does not serve the model {wanted!r}.")
            self.model = self._manifest.name
        return self._manifest

    def _text_chunks(self, texts: Sequence[str]) -> list[Sequence[str]]:
        chunks: list[Sequence[str]] = []
        start, size = 0, 0
        for i, text in enumerate(texts):
            weight = len(text.encode("utf-8")) * 2 + 8  # JSON escaping can double it
            if i > start and (i - start >= self.max_texts or size + weight > self.max_request_bytes):
                chunks.append(texts[start:i])
                start, size = i, 0
            size += weight
        if start < len(texts):
            chunks.append(texts[start:])
        return chunks

    # -------------------------------------------------------------------------------- texts
    def embed(self, texts: Sequence[str], role: Role, truncate: Truncate = "pool") -> EmbeddingBatch:
        texts = list(texts)
        if not texts:
            dim = self._manifest.dimension if self._manifest else 0
            return EmbeddingBatch(np.zeros((0, dim), np.float32), [], [])
        parts: list[npt.NDArray[np.float32]] = []
        counts: list[int] = []
        truncated: list[bool] = []
        for offset, chunk in self._offsets(self._text_chunks(texts)):
            try:
                response = self._call(
                    InvocationRequest(
                        kind="text", model=self.model, role=role, truncate=truncate, inputs=list(chunk)
                    )
                )
            except LabelwiseError as exc:
                raise _shift_index(exc, offset) from exc.__cause__
            vectors = self._vectors(response, len(chunk))
            parts.append(vectors)
            counts += response.token_counts
            truncated += response.truncated
        if len(counts) != len(texts) or len(truncated) != len(texts):
            raise EmbedderUnavailable("The embedding endpoint answered counts that do not match the inputs.")
        return EmbeddingBatch(np.concatenate(parts, axis=0), counts, truncated)

    def count_tokens(self, texts: Sequence[str], role: Role) -> list[int]:
        counts: list[int] = []
        for chunk in self._text_chunks(list(texts)):
            response = self._call(
                InvocationRequest(op="count_tokens", model=self.model, role=role, inputs=list(chunk))
            )
            counts += response.token_counts
        return counts

    # -------------------------------------------------------------------------------- images
    def zero_shot_vectors(self, images: Sequence[ImageInput]) -> npt.NDArray[np.float32]:
        """Image vectors in the zero-shot (label) space, ``(n, d)`` float32."""
        return self._images(images, "zero_shot")

    def features(self, images: Sequence[ImageInput]) -> npt.NDArray[np.float32]:
        """Image feature vectors (few-shot), ``(n, d)`` float32."""
        return self._images(images, "features")

    def _encode_image(self, image: ImageInput) -> bytes:
        if isinstance(image, bytes | bytearray):
            return bytes(image)
        data = _png(image)
        budget = self.max_request_bytes * 3 // 4 - 1024
        side = DOWNSCALE_SIDE
        while len(data) > budget and side >= 64:
            data = _png(image, side)
            side //= 2
        return data

    def _images(self, images: Sequence[ImageInput], task: ImageTask) -> npt.NDArray[np.float32]:
        encoded = [base64.b64encode(self._encode_image(im)).decode("ascii") for im in images]
        if not encoded:
            return np.zeros((0, 0), np.float32)
        chunks: list[list[str]] = [[]]
        size = 0
        for item in encoded:
            if chunks[-1] and size + len(item) + 4 > self.max_request_bytes:
                chunks.append([])
                size = 0
            chunks[-1].append(item)
            size += len(item) + 4
        parts = []
        offset = 0
        for chunk in chunks:
            try:
                response = self._call(
                    InvocationRequest(kind="image", model=self.image_model, task=task, inputs=chunk)
                )
            except LabelwiseError as exc:
                raise _shift_index(exc, offset) from exc.__cause__
            parts.append(self._vectors(response, len(chunk)))
            offset += len(chunk)
        return np.concatenate(parts, axis=0)

    @staticmethod
    def _offsets(chunks: list[Sequence[str]]) -> list[tuple[int, Sequence[str]]]:
        out, offset = [], 0
        for chunk in chunks:
            out.append((offset, chunk))
            offset += len(chunk)
        return out

    @staticmethod
    def _vectors(response: InvocationResponse, expected: int) -> npt.NDArray[np.float32]:
        try:
            vectors = decode_vectors(response)
        except ValueError as exc:
            raise EmbedderUnavailable(f"The embedding endpoint answered malformed vectors: {exc}") from exc
        if vectors.shape[0] != expected:
            raise EmbedderUnavailable(
                f"The embedding endpoint answered {vectors.shape[0]} vectors for {expected} inputs."
            )
        return vectors


def _shift_index(exc: LabelwiseError, offset: int) -> LabelwiseError:
    """An error about ``input[i]`` of a chunk is about ``input[offset + i]`` of the whole call."""
    if offset == 0:
        return exc
    detail = re.sub(r"`input\[(\d+)\]`", lambda m: f"`input[{int(m.group(1)) + offset}]`", exc.detail)
    detail = re.sub(r"^Input (\d+) ", lambda m: f"Input {int(m.group(1)) + offset} ", detail)
    shifted = type(exc)(detail)
    return shifted
