"""Throughput of image embedding in-process, and of texts and images through the endpoint server.

Starts ``python -m labelwise.endpoint.container`` on 127.0.0.1 (a free port) with the chosen provider,
calls it with the same adapter the Lambda uses (:class:`labelwise.endpoint.EndpointEmbedder` over
HTTP), and prints one JSON object with the provider really used, so GPU figures can be recorded
with the command that produced them::

    python scripts/bench_endpoint.py                     # CPU (auto picks CUDA when available)
    python scripts/bench_endpoint.py --provider cuda     # fail unless onnxruntime has CUDA
    python scripts/bench_endpoint.py --model-file model.float.onnx --provider cuda

Images are synthetic 640x480 RGB arrays (sent as PNG, decoded by the server: the full path);
they are skipped when the image model (efficientnet-lite0) is not built.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from labelwise.embedding.manifest import MANIFEST_FILE
from labelwise.endpoint.client import EndpointEmbedder, HttpTransport
from labelwise.settings import Settings

REPO = Path(__file__).resolve().parents[1]

TEXT_MODEL = "multilingual-e5-small"
IMAGE_MODEL = "efficientnet-lite0"
SENTENCES = [
    "My card was charged twice for the same order, please refund one of the payments.",
    "Where is my parcel? The tracking page has not changed for a week.",
    "Can I change the delivery address after the order has shipped?",
    "The app crashes every time I open the settings page on my phone.",
    "Quel est le délai de remboursement pour un article retourné ?",
    "I would like to upgrade my subscription to the annual plan.",
    "The product arrived damaged and the box was soaked.",
    "How do I reset my password if I no longer have access to my email?",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # Smooth-ish synthetic photos (noise compresses badly and would measure PNG, not the model).
    base = rng.integers(0, 256, (n, 30, 40, 3), dtype=np.uint8)
    return [np.kron(b, np.ones((16, 16, 1), np.uint8)) for b in base]


def rate(fn: Any, items: int, min_seconds: float, warmup: int = 1) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    calls, started = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds and calls >= 3:
            break
    return {"per_s": round(calls * items / elapsed, 1), "ms_per_batch": round(1000 * elapsed / calls, 1)}


def start_server(model_dir: Path, args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable, "-m", "labelwise.endpoint.container", "--host", "127.0.0.1", "--port", str(port),
        "--model-dir", str(model_dir), "--provider", args.provider, "--model-file", args.model_file,
    ]  # fmt: skip
    if args.threads:
        command += ["--threads", str(args.threads)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "shared")}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"server exited: {(process.stderr.read() if process.stderr else b'').decode()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                if response.status == 200:
                    return process, url
        except urllib.error.HTTPError as exc:  # 503: loading, or unhealthy (CUDA asked, not used)
            body = json.loads(exc.read() or b"{}")
            if body.get("status") == "unhealthy":
                process.terminate()
                raise SystemExit(f"server unhealthy: {body.get('reason')}") from None
            time.sleep(0.3)
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise SystemExit("server did not become ready")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--provider", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--model-dir", type=Path, default=None, help="default: Settings.model_dir")
    parser.add_argument(
        "--model-file", default="model.onnx", help="text graph: model.onnx or model.float.onnx"
    )
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--text-batch", type=int, default=64)
    parser.add_argument("--image-batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum measuring time per figure")
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()

    root = args.model_dir or Settings.from_environ().model_dir
    have_text = (root / TEXT_MODEL / MANIFEST_FILE).exists()
    have_image = (root / IMAGE_MODEL / MANIFEST_FILE).exists()
    if not have_text:
        raise SystemExit(f"text model not built under {root} (make model)")
    import onnxruntime as ort

    result: dict[str, Any] = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "onnxruntime": ort.__version__,
        "available_providers": ort.get_available_providers(),
        "model_file": args.model_file,
    }
    batch_images = images(args.image_batch)

    if have_image and not args.skip_in_process:
        from labelwise.embedding.image_factory import image_embedder_factory

        local = image_embedder_factory(root / IMAGE_MODEL)
        result["in_process_cpu"] = {
            "images_per_s_batch": args.image_batch,
            "images": rate(lambda: local.zero_shot_vectors(batch_images), args.image_batch, args.seconds),
        }

    process, url = start_server(root, args)
    try:
        remote = EndpointEmbedder(HttpTransport(url, timeout_s=120), model=TEXT_MODEL)
        texts = [SENTENCES[i % len(SENTENCES)] + f" ({i})" for i in range(args.text_batch)]
        remote.embed(texts[:2], "input")
        endpoint: dict[str, Any] = {"provider": remote.last_provider, "text_batch": args.text_batch}
        endpoint["texts"] = rate(lambda: remote.embed(texts, "input"), len(texts), args.seconds)
        if have_image:
            endpoint["image_batch"] = args.image_batch
            endpoint["images"] = rate(
                lambda: remote.zero_shot_vectors(batch_images), args.image_batch, args.seconds
            )
        else:
            endpoint["images"] = f"skipped: {IMAGE_MODEL} not built under {root}"
        result["endpoint"] = endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
    print(json.dumps(result, indent=2))
    if args.provider == "cuda" and result["endpoint"]["provider"] != "CUDAExecutionProvider":
        print(
            "CUDA was requested but the session runs on " + str(result["endpoint"]["provider"]),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
