"""docker/endpoint/requirements.txt is the endpoint container's package set, and it is enough: the
Dockerfile installs exactly it, the server imports without what only the Lambda has, and the pinned
onnxruntime-gpu is new enough for the models. (The set itself is built in a venv and served from in
tests/integration/test_endpoint_container_env.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from tests.unit.test_lock import LOCK, pins, requirement_name

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "endpoint" / "Dockerfile"
REQUIREMENTS = REPO / "docker" / "endpoint" / "requirements.txt"
#: The models' int8 graphs use GatherBlockQuantized(bits=...): onnxruntime 1.22 refuses them, 1.23 loads them.
MODELS_NEED = (1, 23)


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def requirements() -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def test_the_dockerfile_installs_the_requirements_file_and_nothing_else() -> None:
    # Given the Dockerfile's pip installs
    text = DOCKERFILE.read_text(encoding="utf-8")
    installs = re.findall(r"pip install ([^\n&]*)", text)
    # Then there are two: the requirements file (copied in) and labelwise itself with --no-deps
    assert "COPY docker/endpoint/requirements.txt /tmp/endpoint-requirements.txt" in text
    assert [i.strip() for i in installs] == [
        "--no-cache-dir -r /tmp/endpoint-requirements.txt",
        "--no-cache-dir --no-deps . \\",
    ]


def test_the_package_set_pins_an_onnxruntime_gpu_the_models_load_with() -> None:
    # Given the container's requirements, pyproject's floor and the lock
    (gpu,) = [line for line in requirements() if requirement_name(line) == "onnxruntime-gpu"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (floor,) = [spec for spec in project["dependencies"] if requirement_name(spec) == "onnxruntime"]
    # Then the GPU wheel is pinned exactly, and it, the floor and the lock all reach what the models need
    assert re.fullmatch(r"onnxruntime-gpu==\d+\.\d+\.\d+", gpu), gpu
    assert version(gpu) >= MODELS_NEED
    assert re.fullmatch(r"onnxruntime>=\d+\.\d+(\.\d+)?", floor) and version(floor) >= MODELS_NEED, floor
    assert version(pins(LOCK)["onnxruntime"]) >= version(floor)
    # And the CPU wheel is not in the set (it would shadow -gpu's onnxruntime module)
    assert "onnxruntime" not in {requirement_name(line) for line in requirements()}


def test_the_server_imports_without_the_lambda_only_packages() -> None:
    # Given the distributions pyproject has and the container does not (powertools, boto3, ...)
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    container = {requirement_name(line) for line in requirements()} | {"onnxruntime"}
    absent = {requirement_name(spec) for spec in project["dependencies"]} - container
    modules = sorted({name.replace("-", "_") for name in absent} | {"botocore", "onnx"})
    assert "aws_lambda_powertools" in modules and "boto3" in modules
    # When the server module is imported with those made unimportable
    code = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({modules!r}))\n"  # None in sys.modules: ImportError
        "import labelwise.endpoint.container, labelwise.embedding.onnx_embedder\n"
        "import labelwise.embedding.image_factory\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(REPO / "shared")}
    )
    # Then it imports (before request_context.py, embedding.registry imported telemetry -> powertools)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]
