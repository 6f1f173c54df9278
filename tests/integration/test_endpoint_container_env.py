"""The endpoint container's Python environment, without Docker: a venv holding exactly
docker/endpoint/requirements.txt (the file the Dockerfile pip-installs) plus labelwise installed the
way the Dockerfile installs it (``pip install --no-deps`` of a copy of pyproject.toml, README.md and
shared/), serving the built models on loopback with ``python -m labelwise.endpoint.container``.

The GPU wheel is used as pinned: ``onnxruntime-gpu`` installs on this CPU-only machine and its
``CPUExecutionProvider`` runs the models (its CUDA provider is compiled in but cannot load without
the CUDA libraries, which is also what the ``--provider cuda`` test relies on). Set
``LABELWISE_ENDPOINT_ENV_ORT=cpu`` to substitute the CPU ``onnxruntime`` of the same version (a
~20 MB wheel instead of ~250 MB) where the GPU wheel cannot be fetched.

The venv is built once per requirements file (and Python version and substitution) under
``~/.cache/labelwise/endpoint-venv/<hash>``; labelwise itself is reinstalled into it on every run.
Needs the package index (``pip install``) the first time.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from labelwise.embedding.manifest import MANIFEST_FILE
from labelwise.endpoint.protocol import InvocationResponse, decode_vectors
from labelwise.settings import Settings
from tests.support.moto_server import free_port

pytestmark = [pytest.mark.slow, pytest.mark.model]

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "docker" / "endpoint" / "requirements.txt"
TEXT_MODELS = ("multilingual-e5-small", "all-minilm-l6-v2")
IMAGE_MODEL = "efficientnet-lite0"
CACHE = Settings.from_environ().cache_dir / "endpoint-venv"


def requirement_lines(substitute_cpu: bool) -> list[str]:
    """The requirements file's lines, with ``onnxruntime-gpu`` -> ``onnxruntime`` when asked."""
    lines = []
    for raw in REQUIREMENTS.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if substitute_cpu:
            line = re.sub(r"^onnxruntime-gpu\b", "onnxruntime", line)
        lines.append(line)
    return lines


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, **kwargs)  # type: ignore[call-overload]


def checked(cmd: list[str], **kwargs: object) -> str:
    result = run(cmd, **kwargs)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-4000:]}"
        )
    return result.stdout


@pytest.fixture(scope="module")
def container_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv's python: the requirements (cached venv), then labelwise as the Dockerfile installs it."""
    substitute_cpu = os.environ.get("LABELWISE_ENDPOINT_ENV_ORT", "gpu") == "cpu"
    lines = requirement_lines(substitute_cpu)
    key = hashlib.sha256("\n".join([sys.version, *lines]).encode()).hexdigest()[:16]
    venv = CACHE / key
    python = venv / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time (xdist workers, parallel runs)
        if not (venv / ".complete").exists():
            shutil.rmtree(venv, ignore_errors=True)
            checked([sys.executable, "-m", "venv", str(venv)])
            requirements = venv / "requirements.txt"
            requirements.write_text("\n".join(lines) + "\n", encoding="utf-8")
            checked([str(python), "-m", "pip", "install", "--no-cache-dir", "-r", str(requirements)])
            (venv / ".complete").write_text(key, encoding="utf-8")
        # labelwise as in the Dockerfile: COPY pyproject.toml README.md shared, pip install --no-deps .
        context = tmp_path_factory.mktemp("build-context")
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, context / name)
        shutil.copytree(
            REPO / "shared", context / "shared", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
        checked(
            [str(python), "-m", "pip", "install", "--no-deps", "--force-reinstall", "--quiet", str(context)]
        )
    return python


def test_the_venv_holds_exactly_the_container_package_set(container_python: Path) -> None:
    # Given the container venv
    # When its distributions are listed
    frozen = checked([str(container_python), "-m", "pip", "list", "--format=json"])
    names = {item["name"].lower().replace("_", "-") for item in json.loads(frozen)}

    # Then every requirement is there and nothing the Lambda brings (powertools, boto3, the CPU wheel)
    gpu = os.environ.get("LABELWISE_ENDPOINT_ENV_ORT", "gpu") != "cpu"
    for line in requirement_lines(substitute_cpu=not gpu):
        assert re.split(r"[<>=!~\[ ]", line, maxsplit=1)[0].lower() in names, line
    assert "labelwise" in names
    assert not names & {"aws-lambda-powertools", "boto3", "botocore", "onnx", "torch"}
    if gpu:
        assert "onnxruntime" not in names  # only -gpu provides the onnxruntime module


def test_the_dockerfile_build_check_passes(container_python: Path, tmp_path: Path) -> None:
    # Given the check the Dockerfile runs after installing labelwise
    dockerfile = (REPO / "docker" / "endpoint" / "Dockerfile").read_text(encoding="utf-8")
    check = re.search(r'python -c "(import labelwise\.endpoint\.container[^"]*)"', dockerfile)
    assert check, "the Dockerfile's build-time import check is gone"

    # When it runs in the venv (outside the repository, so only the installed labelwise is importable)
    code = check.group(1) + "; import labelwise; print(labelwise.__file__)"
    out = checked([str(container_python), "-c", code], cwd=tmp_path)

    # Then it imports the installed server and lists the CPU provider
    assert "CPUExecutionProvider" in out
    assert str(container_python.parents[1]) in out.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def served_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = Settings.from_environ().model_dir
    missing = [n for n in (*TEXT_MODELS, IMAGE_MODEL) if not (root / n / MANIFEST_FILE).exists()]
    if missing:
        pytest.skip(f"models not built under {root}: {missing} (make model)")
    served = tmp_path_factory.mktemp("container-models")
    for name in (*TEXT_MODELS, IMAGE_MODEL):
        (served / name).symlink_to(root / name)
    return served


@contextlib.contextmanager
def endpoint(python: Path, models: Path, cwd: Path, *args: str, want: str = "ok") -> Iterator[str]:
    """``python -m labelwise.endpoint.container`` from the container venv on loopback, until /ping's
    ``status`` is ``want`` (``ok``, or ``unhealthy``: not the 503 while loading) or the process exits."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    process = subprocess.Popen(
        [str(python), "-m", "labelwise.endpoint.container", "--host", "127.0.0.1", "--port", str(port),
         "--model-dir", str(models), "--threads", "1", *args],
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                out = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"endpoint server exited ({process.returncode}): {out[-3000:]}")
            status, body = ping(url)
            if body.get("status") == want:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"/ping did not answer {want} in 180 s (last: {status})")
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def ping(url: str) -> tuple[int | None, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
    except OSError:
        return None, {}


def invoke(url: str, payload: dict[str, object]) -> InvocationResponse:
    request = urllib.request.Request(
        f"{url}/invocations", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        return InvocationResponse.model_validate_json(response.read())


def test_the_container_env_serves_both_text_models_and_the_image_model(
    container_python: Path, served_models: Path, tmp_path: Path
) -> None:
    from labelwise.embedding.image_factory import image_embedder_factory
    from labelwise.embedding.onnx_embedder import OnnxEmbedder

    texts = ["Refund my last order please", "Où est mon colis ?"]
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    from PIL import Image

    png = io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")

    # Given the server started from the container venv on the CPU provider, with all three models
    with endpoint(container_python, served_models, tmp_path, "--provider", "cpu") as url:
        # When /ping, and /invocations for each text model and for an image, are called
        status, health = ping(url)
        answers = {
            name: invoke(
                url, {"op": "embed", "kind": "text", "model": name, "inputs": texts, "encoding": "list"}
            )
            for name in TEXT_MODELS
        }
        encoded = base64.b64encode(png.getvalue()).decode()
        image = invoke(url, {"op": "embed", "kind": "image", "model": IMAGE_MODEL, "task": "zero_shot",
                             "inputs": [encoded], "encoding": "list"})  # fmt: skip

    # Then /ping is healthy on the CPU provider
    assert status == 200 and health == {"status": "ok", "provider": "CPUExecutionProvider"}
    # And each text model answers what the same model gives in-process, up to the onnxruntime version
    # (the container's 1.26 vs the lock's 1.31 on the CPU: cosine >= 0.994 on these int8 graphs)
    for name, answer in answers.items():
        local = OnnxEmbedder.from_dir(served_models / name, intra_op_threads=1).embed(texts, "input")
        got = decode_vectors(answer)
        assert answer.model == name and got.shape == local.vectors.shape
        assert cosines(got, local.vectors).min() > 0.99, (name, cosines(got, local.vectors))
    # And the image model answers one vector like the in-process one
    want = image_embedder_factory(served_models / IMAGE_MODEL).zero_shot_vectors([pixels]).vectors
    got = decode_vectors(image)
    assert image.model == IMAGE_MODEL and got.shape == want.shape
    assert cosines(got, want).min() > 0.99, cosines(got, want)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray(
        (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)), dtype=np.float64
    )


def test_the_gpu_wheel_links_the_cuda_major_of_the_base_image(container_python: Path) -> None:
    if os.environ.get("LABELWISE_ENDPOINT_ENV_ORT", "gpu") == "cpu":
        pytest.skip("the CPU onnxruntime was substituted (LABELWISE_ENDPOINT_ENV_ORT=cpu)")
    # Given the Dockerfile's CUDA base image and the pinned wheel's CUDA provider library
    dockerfile = (REPO / "docker" / "endpoint" / "Dockerfile").read_text(encoding="utf-8")
    image = re.search(r"ARG CUDA_IMAGE=nvidia/cuda:(\d+)\.\d+\.\d+-cudnn-runtime", dockerfile)
    assert image, "the Dockerfile's CUDA_IMAGE is not an nvidia/cuda cudnn-runtime image"
    out = checked(
        [
            str(container_python),
            "-c",
            "import onnxruntime, pathlib; print(pathlib.Path(onnxruntime.__file__).parent)",
        ]
    )
    provider = Path(out.strip()) / "capi" / "libonnxruntime_providers_cuda.so"

    # When the libraries it needs are read from it
    linked = set(re.findall(rb"libcudart\.so\.(\d+)", provider.read_bytes()))

    # Then it needs the CUDA runtime major the image ships (1.27+ wheels need CUDA 13: this fails)
    assert linked == {image.group(1).encode()}, (linked, image.group(0))


def test_cuda_requested_in_the_container_env_without_a_gpu_is_unhealthy(
    container_python: Path, served_models: Path, tmp_path: Path
) -> None:
    # Given the server from the container venv started with --provider cuda on this CPU-only machine
    # (onnxruntime-gpu offers CUDAExecutionProvider, but it cannot load: the sessions fall back to CPU)
    with endpoint(container_python, served_models, tmp_path, "--provider", "cuda", want="unhealthy") as url:
        # When SageMaker pings it
        status, body = ping(url)

    # Then it answers 503 with a JSON reason naming the models that fell back
    assert status == 503 and body["status"] == "unhealthy"
    reason = str(body["reason"])
    if os.environ.get("LABELWISE_ENDPOINT_ENV_ORT", "gpu") == "cpu":  # the CPU wheel offers no CUDA
        assert "CUDA was requested but is unavailable" in reason, reason
        return
    assert body["provider"] == "CPUExecutionProvider" and "CUDA was requested" in reason
    assert all(f"{name} on CPUExecutionProvider" in reason for name in TEXT_MODELS), reason
