"""The embedding inference server: SageMaker's container contract on the standard library.

``GET /ping`` answers 200 once the models are loaded; ``POST /invocations`` takes one
:class:`labelwise.endpoint.protocol.InvocationRequest` (JSON) and answers an
:class:`~labelwise.endpoint.protocol.InvocationResponse`. SageMaker starts the container with the
argument ``serve`` and expects port 8080 (see ``shared/labelwise/endpoint/serve``)::

    python -m labelwise.endpoint.container --port 8080 --model-dir /opt/ml/model

Texts and images are embedded with the same code and model files the Lambda uses in-process
(:class:`labelwise.embedding.onnx_embedder.OnnxEmbedder`, the image embedder), on onnxruntime's
CUDA provider when it is available and on the CPU otherwise.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from labelwise import __version__
from labelwise.embedding.image_factory import image_embedder_factory
from labelwise.embedding.manifest import MANIFEST_FILE, ModelManifest
from labelwise.embedding.onnx_embedder import OnnxEmbedder
from labelwise.embedding.port import EmbeddingBatch, ImageEmbedder, ImageVectors, image_matrix
from labelwise.embedding.registry import ModelRegistry
from labelwise.endpoint.protocol import (
    CONTENT_TYPE,
    PROTOCOL_VERSION,
    DescribeResponse,
    ErrorBody,
    ErrorResponse,
    InvocationRequest,
    InvocationResponse,
    ModelInfo,
    encode_vectors,
)
from labelwise.errors import (
    EmbedderUnavailable,
    InvalidImage,
    InvalidInput,
    LabelwiseError,
    ModelNotFound,
    UnsupportedInput,
)
from labelwise.http_status import status_for
from labelwise.images.decode import ImageLimits, decode_image

logger = logging.getLogger("labelwise.endpoint")

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
#: SageMaker's real-time payload limit is 6 MB (25 MB for some instance families); allow a margin.
DEFAULT_MAX_BODY = 32 * 1024 * 1024
DEFAULT_IMAGE_MODEL = "efficientnet-lite0"


def select_providers(requested: str = "auto") -> list[str]:
    """``auto``: CUDA then CPU when onnxruntime offers CUDA, else CPU. ``cuda`` insists on CUDA
    (RuntimeError when absent), ``cpu`` forces the CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if requested == "cuda":
        raise RuntimeError(f"CUDAExecutionProvider is not available (onnxruntime offers {available})")
    return [CPU]


def as_matrix(result: ImageVectors) -> tuple[npt.NDArray[np.float32], list[int] | None]:
    """An image embedder's result as ``(n, d)`` float32 and its token counts when it has them (an
    :class:`~labelwise.embedding.port.EmbeddingBatch`, or a bare array)."""
    array = image_matrix(result)
    counts = result.token_counts if isinstance(result, EmbeddingBatch) else None
    if array.ndim != 2:
        raise EmbedderUnavailable(f"the image model returned an array of shape {array.shape}")
    return array, (list(counts) if counts is not None else None)


def _default_image_loader(model_dir: Path, providers: list[str]) -> ImageEmbedder:
    """The in-process image runtime (:func:`labelwise.embedding.image_factory.image_embedder_factory`);
    image models run on onnxruntime's CPU provider (their ``from_dir`` takes no ``providers``)."""
    return image_embedder_factory(model_dir)


def _scan_models(model_dir: Path) -> tuple[dict[str, tuple[ModelManifest, Path]], dict[str, Path]]:
    """The model directories under ``model_dir``: text manifests by name, image directories by name."""
    text_manifests: dict[str, tuple[ModelManifest, Path]] = {}
    image_dirs: dict[str, Path] = {}
    for path in sorted(model_dir.glob(f"*/{MANIFEST_FILE}")):
        if path.parent.name.startswith("."):  # a build in progress (``.<name>.building``)
            continue
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("modality", "text") == "image":
            image_dirs[str(raw.get("name") or path.parent.name)] = path.parent
        else:
            manifest = ModelManifest.load(path.parent)
            text_manifests[manifest.name] = (manifest, path.parent)
    return text_manifests, image_dirs


def _reported_provider(used: dict[str, str], providers: list[str]) -> str:
    """The provider reported: CPU when any text session fell back to it, else what they use."""
    if not used:
        return providers[0]
    return CPU if CPU in used.values() else next(iter(used.values()))


ImageLoaderFn = Callable[[Path, list[str]], ImageEmbedder]


@dataclass
class EndpointModels:
    """What the server serves: text models (a registry) and image models, and the provider used."""

    texts: ModelRegistry
    images: dict[str, ImageEmbedder] = field(default_factory=dict)
    provider: str = CPU
    image_limits: ImageLimits = field(default_factory=ImageLimits)
    #: ``--provider``: with ``cuda``, a text session that fell back to the CPU makes ``/ping`` unhealthy.
    requested: str = "auto"
    #: The provider each text model's session really uses (its first one).
    model_providers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(
        cls,
        model_dir: Path,
        *,
        providers: list[str],
        default_model: str | None = None,
        model_file: str = "model.onnx",
        image_limits: ImageLimits | None = None,
        image_loader: ImageLoaderFn = _default_image_loader,
        intra_op_threads: int | None = None,
        requested: str = "auto",
    ) -> EndpointModels:
        """Every model directory under ``model_dir``: text models by their manifest, image models by
        ``"modality": "image"`` in theirs. All are loaded now, so ``/ping`` means ready."""
        text_manifests, image_dirs = _scan_models(model_dir)
        used: dict[str, str] = {}

        def text_factory(directory: Path) -> OnnxEmbedder:
            embedder = OnnxEmbedder.from_dir(
                directory, providers=providers, model_file=model_file, intra_op_threads=intra_op_threads
            )
            used[embedder.manifest.name] = (embedder.providers or [CPU])[0]
            return embedder

        default = default_model or (sorted(text_manifests)[0] if text_manifests else "")
        registry = ModelRegistry(text_manifests, default, text_factory)
        for name in text_manifests:
            registry.get(name)  # load now
        images = {name: image_loader(directory, providers) for name, directory in image_dirs.items()}
        if not text_manifests and not images:
            raise EmbedderUnavailable(f"no model directories under {model_dir}")
        return cls(
            texts=registry,
            images=images,
            provider=_reported_provider(used, providers),
            image_limits=image_limits or ImageLimits(),
            requested=requested,
            model_providers=dict(used),
        )

    def health(self) -> tuple[int, dict[str, Any]]:
        """``GET /ping``: 200 ``{"status": "ok", ...}``, or 503 ``{"status": "unhealthy", "reason"}``
        when CUDA was requested (``--provider cuda``) and a text session runs on something else (the
        CUDA provider failed to load: onnxruntime falls back to the CPU with only a log line)."""
        if self.requested == "cuda":
            fallen = {name: used for name, used in self.model_providers.items() if used != CUDA}
            if fallen or not self.model_providers:
                where = ", ".join(f"{name} on {used}" for name, used in sorted(fallen.items()))
                reason = (
                    f"CUDA was requested (--provider cuda) but {where or 'no text model loaded'}: "
                    "the CUDA provider did not load (driver, CUDA or cuDNN libraries; see the log)"
                )
                return 503, {"status": "unhealthy", "provider": self.provider, "reason": reason}
        return 200, {"status": "ok", "provider": self.provider}

    # ------------------------------------------------------------------------------ invocations
    def describe(self) -> DescribeResponse:
        models = [
            ModelInfo(
                name=name,
                kind="text",
                dimension=self.texts.manifest(name).dimension,
                manifest=self.texts.manifest(name).to_dict(),
            )
            for name in self.texts.available
        ]
        models += [ModelInfo(name=name, kind="image", manifest=None) for name in sorted(self.images)]
        default = self.texts.default_model if self.texts.available else None
        return DescribeResponse(provider=self.provider, default_model=default, models=models)

    def _image_model(self, requested: str | None) -> tuple[str, ImageEmbedder]:
        if not self.images:
            raise UnsupportedInput("This endpoint has no image model.")
        if requested is None:
            name = DEFAULT_IMAGE_MODEL if DEFAULT_IMAGE_MODEL in self.images else sorted(self.images)[0]
            return name, self.images[name]
        for name, model in self.images.items():
            if name.lower() == requested.strip().lower():
                return name, model
        raise ModelNotFound(
            f"Image model '{requested}' not found. Available: {', '.join(sorted(self.images))}."
        )

    def invoke(self, request: InvocationRequest) -> InvocationResponse | DescribeResponse:
        if request.version != PROTOCOL_VERSION:
            raise InvalidInput(
                f"protocol version {request.version} is not supported (this is {PROTOCOL_VERSION})"
            )
        if request.op == "describe":
            return self.describe()
        if request.kind == "image":
            if request.op != "embed":
                raise InvalidInput("images support only op=embed")
            return self._embed_images(request)
        embedder = self.texts.get(request.model)
        if request.op == "count_tokens":
            counts = embedder.count_tokens(request.inputs, request.role)
            return InvocationResponse(
                model=embedder.manifest.name,
                provider=self.provider,
                dimension=embedder.manifest.dimension,
                count=len(counts),
                encoding=request.encoding,
                token_counts=counts,
            )
        batch = embedder.embed(request.inputs, request.role, request.truncate)
        return InvocationResponse(
            model=embedder.manifest.name,
            provider=self.provider,
            dimension=int(batch.vectors.shape[1]),
            count=int(batch.vectors.shape[0]),
            encoding=request.encoding,
            vectors=encode_vectors(batch.vectors, request.encoding),
            token_counts=batch.token_counts,
            truncated=batch.truncated,
        )

    def _embed_images(self, request: InvocationRequest) -> InvocationResponse:
        name, model = self._image_model(request.model)
        pixels = []
        for i, text in enumerate(request.inputs):
            try:
                data = base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise InvalidImage(f"`input[{i}]` is not a usable image: not valid base64.") from None
            pixels.append(decode_image(data, i, self.image_limits))
        counts: list[int] | None = None
        if not pixels:
            vectors = np.zeros((0, 0), np.float32)
        else:
            run = model.zero_shot_vectors if request.task == "zero_shot" else model.features
            try:
                vectors, counts = as_matrix(run(pixels))
            except LabelwiseError:
                raise
            except Exception as exc:  # onnxruntime's exceptions are not a public hierarchy
                raise EmbedderUnavailable(f"image model {name} failed: {exc}") from exc
        return InvocationResponse(
            model=name,
            provider=self.provider,
            dimension=int(vectors.shape[1]),
            count=int(vectors.shape[0]),
            encoding=request.encoding,
            vectors=encode_vectors(vectors, request.encoding),
            token_counts=counts if counts is not None else [1] * len(pixels),
            truncated=[False] * len(pixels),
        )


def handle_invocation(models: EndpointModels, body: bytes) -> tuple[int, bytes]:
    """One ``POST /invocations``: (status, JSON body). Never raises."""
    try:
        request = InvocationRequest.model_validate_json(body)
    except ValidationError as exc:
        problems = exc.errors()
        where = ".".join(str(p) for p in problems[0]["loc"]) if problems else ""
        message = problems[0]["msg"] if problems else "invalid"
        return _error(400, "INPUT_INVALID", f"invalid invocation: {where}: {message}")
    try:
        response = models.invoke(request)
    except LabelwiseError as exc:
        status = status_for(exc, default=503)  # any other failure: a dependency's (503)
        if status >= 500:
            logger.warning("invocation failed: %s", exc.detail)
        return _error(status, exc.code, exc.detail)
    except Exception:
        logger.exception("unexpected error in an invocation")
        return _error(500, "INTERNAL_ERROR", "internal error")
    return 200, response.model_dump_json(exclude_none=True).encode("utf-8")


def _error(status: int, code: str, detail: str) -> tuple[int, bytes]:
    return status, ErrorResponse(error=ErrorBody(code=code, detail=detail)).model_dump_json().encode("utf-8")


@dataclass(frozen=True)
class _Routes:
    """What ``/ping`` and ``/invocations`` answer, apart from HTTP: (status, JSON body)."""

    get_models: Callable[[], EndpointModels | None]
    max_body: int
    get_failure: Callable[[], str | None]

    def ping(self) -> tuple[int, bytes]:
        failure = self.get_failure()
        if failure is not None:
            return 503, json.dumps({"status": "unhealthy", "reason": failure}).encode()
        models = self.get_models()
        if models is None:
            return _error(503, "SERVICE_UNAVAILABLE", "loading models")
        status, body = models.health()
        return status, json.dumps(body).encode()

    def body_length(self, header: str | None) -> int | None:
        """The declared body length, or None when it is invalid or over ``max_body``."""
        try:
            length = int(header or 0)
        except ValueError:
            return None
        return length if 0 <= length <= self.max_body else None

    def too_large(self) -> tuple[int, bytes]:
        return _error(413, "INPUT_PAYLOAD_TOO_LARGE", f"at most {self.max_body} bytes per invocation")

    def invocation(self, body: bytes) -> tuple[int, bytes]:
        failure = self.get_failure()
        if failure is not None:
            return _error(503, "SERVICE_UNAVAILABLE", failure)
        models = self.get_models()
        if models is None:
            return _error(503, "SERVICE_UNAVAILABLE", "loading models")
        return handle_invocation(models, body)


def _route_not_found() -> tuple[int, bytes]:
    return _error(404, "ROUTE_NOT_FOUND", "GET /ping or POST /invocations")


def make_handler(
    get_models: Callable[[], EndpointModels | None],
    max_body: int = DEFAULT_MAX_BODY,
    get_failure: Callable[[], str | None] = lambda: None,
) -> type[BaseHTTPRequestHandler]:
    """``get_models`` is None while loading (503); ``get_failure``, a reason the server can never
    become healthy (503 with it, on ``/ping`` and ``/invocations``)."""
    routes = _Routes(get_models, max_body, get_failure)

    class Handler(BaseHTTPRequestHandler):
        server_version = f"labelwise-endpoint/{__version__}"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("%s - %s", self.address_string(), format % args)

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/ping":
                self._send(*_route_not_found())
                return
            self._send(*routes.ping())

        do_HEAD = do_GET

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/invocations":
                self._send(*_route_not_found())
                return
            length = routes.body_length(self.headers.get("Content-Length"))
            if length is None:
                self.close_connection = True
                self._send(*routes.too_large())
                return
            self._send(*routes.invocation(self.rfile.read(length)))

    return Handler


class EndpointServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(models: EndpointModels, host: str = "0.0.0.0", port: int = 8080) -> EndpointServer:
    return EndpointServer((host, port), make_handler(lambda: models))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m labelwise.endpoint.container", description=__doc__)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model-dir", type=Path, default=Path("/opt/ml/model"))
    parser.add_argument("--default-model", default=None)
    parser.add_argument("--provider", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--model-file", default="model.onnx", help="model.float.onnx to run the float graph")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads (CPU)")
    parser.add_argument("--image-max-bytes", type=int, default=8 * 1024 * 1024)
    parser.add_argument("--image-max-pixels", type=int, default=50_000_000)
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    state: dict[str, EndpointModels] = {}
    failure: list[str] = []
    server = EndpointServer(
        (args.host, args.port),
        make_handler(
            lambda: state.get("models"), args.max_body_bytes, lambda: failure[0] if failure else None
        ),
    )
    # Serve /ping (503) while loading, as SageMaker polls it from the start.
    thread = threading.Thread(target=server.serve_forever, name="endpoint-http", daemon=True)
    thread.start()
    try:
        providers = select_providers(args.provider)
    except RuntimeError as exc:  # --provider cuda without CUDA: stay up, unhealthy, saying why
        logger.error("not serving: %s", exc)
        failure.append(f"CUDA was requested but is unavailable: {exc}")
        return _serve_until_stopped(server, thread)
    state["models"] = _load_from_args(args, providers)
    return _serve_until_stopped(server, thread)


def _load_from_args(args: argparse.Namespace, providers: list[str]) -> EndpointModels:
    """:meth:`EndpointModels.load` as the command line asks, logging what is served (and why not healthy)."""
    models = EndpointModels.load(
        args.model_dir,
        providers=providers,
        default_model=args.default_model,
        model_file=args.model_file,
        image_limits=ImageLimits(max_bytes=args.image_max_bytes, max_pixels=args.image_max_pixels),
        intra_op_threads=args.threads,
        requested=args.provider,
    )
    status, health = models.health()
    if status != 200:
        logger.error("unhealthy: %s", health["reason"])
    logger.info(
        "serving on %s:%d: text %s, image %s, provider %s",
        args.host,
        args.port,
        models.texts.available,
        sorted(models.images),
        models.provider,
    )
    return models


def _serve_until_stopped(server: EndpointServer, thread: threading.Thread) -> int:
    try:
        thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
