"""The `sam build` output fits Lambda: unzipped ModelLayer + each function artifact <= 250 MB, a layer
trimmed of what is not needed at run time, the models and manifests in place, and (with CPython 3.12 at
hand) the layer alone imports and runs every model the way Lambda will.

Needs `make sam-build` (skipped, with the reason, when .aws-sam/build is absent).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from labelwise.embedding.manifest import MANIFEST_FILE, ModelManifest
from tests.support.template import FUNCTION, REPO_ROOT, load_template, resources

BUILD = REPO_ROOT / ".aws-sam" / "build"
LAYER = BUILD / "ModelLayer"
#: Lambda's limit on a function's unzipped deployment package plus all its layers.
LAMBDA_UNZIPPED_LIMIT = 262_144_000
MODEL_FILES = ("model.onnx", "model.onnx.data", "tokenizer.json", MANIFEST_FILE)
EXPECTED_MODELS = ("multilingual-e5-small",)  # the default model must ship; others are optional
BUILT_TEMPLATE = BUILD / "template.yaml"
#: Functions of the *built* template (what `sam build` produced); see test_build_is_up_to_date.
FUNCTIONS = tuple(resources(load_template(BUILT_TEMPLATE), FUNCTION)) if BUILT_TEMPLATE.exists() else ()

pytestmark = pytest.mark.skipif(
    not (BUILD / "template.yaml").exists() or not LAYER.is_dir(),
    reason=f"no sam build output in {BUILD.relative_to(REPO_ROOT)}: run `make sam-build`",
)


def tree_bytes(root: Path) -> int:
    """Bytes of all regular files under ``root`` (what Lambda counts once unzipped)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def test_build_is_up_to_date() -> None:
    # Given the source template and the one `sam build` wrote
    source = set(resources(load_template(), FUNCTION))

    # Then the build has every function of the source template (else: re-run `make sam-build`)
    assert set(FUNCTIONS) == source, "stale .aws-sam/build: run `make sam-build`"
    for function_id in FUNCTIONS:
        assert (BUILD / function_id).is_dir(), function_id


def test_layer_plus_each_function_fits_the_unzipped_limit() -> None:
    # Given the built layer and functions
    layer = tree_bytes(LAYER)
    report = [
        f"ModelLayer {mb(layer)} (python {mb(tree_bytes(LAYER / 'python'))}, "
        f"models {mb(tree_bytes(LAYER / 'models'))})"
    ]

    # When each function is combined with the layer
    for function_id in FUNCTIONS:
        function = tree_bytes(BUILD / function_id)
        total = layer + function
        report.append(
            f"{function_id} {mb(function)}; with layer {mb(total)} "
            f"of {mb(LAMBDA_UNZIPPED_LIMIT)} ({mb(LAMBDA_UNZIPPED_LIMIT - total)} left)"
        )

        # Then the combination stays within Lambda's 250 MB unzipped limit
        assert total <= LAMBDA_UNZIPPED_LIMIT, "\n".join(report)
    print("\n".join(report))  # shown with -s / -rP: the figures quoted in docs/deploy.md


def test_layer_is_trimmed() -> None:
    # Given the layer's python directory
    python = LAYER / "python"
    names = {p.relative_to(python).as_posix() for p in python.rglob("*")}

    # Then the runtime is there
    for package in ("numpy", "onnxruntime", "tokenizers"):
        assert (python / package / "__init__.py").is_file(), package
    # And what is not needed at run time is not
    assert not any(n.split("/")[0] in ("torch", "onnx", "sympy", "transformers") for n in names)
    for trimmed in ("onnxruntime/quantization", "onnxruntime/transformers", "onnxruntime/tools"):
        assert not (python / trimmed).exists(), trimmed
    assert not [n for n in names if n.endswith("/tests") or "/tests/" in n]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_layer_ships_built_models_with_manifests() -> None:
    # Given the layer's models directory (/opt/models in Lambda)
    models = LAYER / "models"
    shipped = sorted(p.name for p in models.iterdir() if p.is_dir())

    # Then the default model is there
    assert set(EXPECTED_MODELS) <= set(shipped), shipped
    for name in shipped:
        model_dir = models / name
        # And every model directory holds exactly the int8 graph, its tokenizer and its manifest
        assert sorted(p.name for p in model_dir.iterdir()) == sorted(MODEL_FILES), name
        manifest = ModelManifest.load(model_dir)
        assert manifest.name == name
        # And the files are the ones the manifest describes (when it records their digests)
        for file_name, digest in manifest.files.items():
            if file_name in MODEL_FILES and file_name != MANIFEST_FILE:
                import hashlib

                assert hashlib.sha256((model_dir / file_name).read_bytes()).hexdigest() == digest, file_name
        # And every file is readable by the function's user (0644), every directory searchable (0755)
        assert stat.S_IMODE(model_dir.stat().st_mode) == 0o755, name
        for path in model_dir.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, (name, path.name)


def test_function_artifacts_hold_the_handler_and_the_package_but_not_the_layer() -> None:
    built = load_template(BUILT_TEMPLATE)
    for function_id in FUNCTIONS:
        # Given a built function
        root = BUILD / function_id
        handler_module = built["Resources"][function_id]["Properties"]["Handler"].rsplit(".", 1)[0]

        # Then it has its handler, labelwise and its own dependencies
        assert (root / f"{handler_module}.py").is_file(), function_id
        assert (root / "labelwise" / "__init__.py").is_file(), function_id
        for package in ("pydantic", "pydantic_core", "aws_lambda_powertools", "aws_xray_sdk"):
            assert (root / package).is_dir(), (function_id, package)
        # And nothing the runtime or the layer provides, nor build-time or dev-only code, nor the
        # local server's playground page
        provided = ("numpy", "onnxruntime", "tokenizers", "boto3", "botocore")
        for absent in (*provided, "labelwise/modelbuild", "labelwise/evaluation", "labelwise/playground"):
            assert not (root / absent).exists(), (function_id, absent)


def _python312() -> str | None:
    candidates = [
        os.environ.get("LABELWISE_PYTHON312", ""),
        str(Path.home() / ".pyenv/versions/3.12.1/bin/python3.12"),
    ]
    candidates.append(shutil.which("python3.12") or "")
    return next((c for c in candidates if c and Path(c).is_file()), None)


@pytest.mark.slow
def test_layer_alone_runs_every_model_under_python_312() -> None:
    # Given CPython 3.12 (the Lambda runtime's version) and nothing but the layer on sys.path
    python = _python312()
    if python is None:
        pytest.skip("no CPython 3.12 found (set LABELWISE_PYTHON312): cannot import the cp312 layer")

    # When the smoke script imports numpy/onnxruntime/tokenizers and embeds a text with each model
    result = subprocess.run(
        [python, "-I", "-B", str(REPO_ROOT / "layers" / "model" / "smoke.py"), str(LAYER)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    # Then every model returns a unit-length embedding of its manifest's dimension
    assert result.returncode == 0, result.stdout + result.stderr
    shipped = [p.name for p in (LAYER / "models").iterdir() if p.is_dir()]
    for name in shipped:
        assert f"{name}:" in result.stdout


@pytest.mark.slow
def test_function_artifact_imports_with_the_layer_under_python_312(tmp_path: Path) -> None:
    # Given CPython 3.12, the layer's python dir and one function artifact on sys.path (as in Lambda),
    # with the runtime-provided boto3 taken from the project venv
    python = _python312()
    if python is None:
        pytest.skip("no CPython 3.12 found (set LABELWISE_PYTHON312)")
    import importlib.util

    runtime = tmp_path / "runtime"  # stands in for the python3.12 runtime's own boto3 stack
    runtime.mkdir()
    for module in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"):
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, module
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)
    runtime_provided = [str(runtime)]
    code = (
        "import sys, json\n"
        "import pydantic, aws_lambda_powertools, aws_xray_sdk, numpy, onnxruntime, tokenizers\n"
        "import labelwise.settings, labelwise.embedding.manifest\n"
        "print(json.dumps({'pydantic': pydantic.VERSION}))\n"
    )
    # Image inputs decode with Pillow in the classify artifact (labelwise.images)
    if "ClassifyFunction" in FUNCTIONS:
        assert (BUILD / "ClassifyFunction" / "PIL").is_dir(), "ClassifyFunction: Pillow missing"
    for function_id in FUNCTIONS:
        pil = "import PIL.Image, PIL.PngImagePlugin, PIL.JpegImagePlugin\n"
        function_code = (pil if (BUILD / function_id / "PIL").is_dir() else "") + code
        path = os.pathsep.join([str(BUILD / function_id), str(LAYER / "python"), *runtime_provided])
        # When the dependencies are imported there
        result = subprocess.run(
            [
                python,
                "-I",
                "-B",
                "-c",
                f"import sys; sys.path[:0] = {path.split(os.pathsep)!r}\n{function_code}",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=tmp_path,
        )
        # Then they all import (the cp312 manylinux wheels are the right ones)
        assert result.returncode == 0, (function_id, result.stdout + result.stderr)
        assert json.loads(result.stdout.strip().splitlines()[-1])["pydantic"]


INVOKE = """
import json, sys
from dataclasses import dataclass

@dataclass
class Context:  # the attributes Powertools reads from the Lambda context
    function_name: str = "labelwise-classify"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:labelwise-classify"
    aws_request_id: str = "built-artifact-test"
    log_group_name: str = "/aws/lambda/labelwise-classify"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000

import app
event = json.loads(sys.stdin.read())
response = app.lambda_handler(event, Context())
print("RESPONSE " + json.dumps(response))
"""


@pytest.mark.slow
@pytest.mark.model
def test_built_classify_function_answers_an_event_with_only_the_layer(tmp_path: Path) -> None:
    # Given CPython 3.12 with only the built artifact, the layer and the runtime's boto3 on sys.path
    # ("sam local invoke" without Docker), and the template's table/bucket in a moto server
    python = _python312()
    if python is None:
        pytest.skip("no CPython 3.12 found (set LABELWISE_PYTHON312)")
    import boto3

    from labelwise.settings import Settings
    from labelwise.storage.aws import AwsKeyStore
    from tests.support.lambda_stack import lambda_environment
    from tests.support.moto_server import FAKE_AWS_ENV, moto_server
    from tests.support.template import create_resources

    runtime = tmp_path / "runtime"
    runtime.mkdir()
    import importlib.util

    for module in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"):
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, module
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (runtime / source.name).symlink_to(source)

    with moto_server() as endpoint:
        session = boto3.session.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        created = create_resources(session, endpoint_url=endpoint)
        env = {
            "PATH": os.environ.get("PATH", ""),
            **FAKE_AWS_ENV,
            # the layer's models: /opt/models in Lambda
            **lambda_environment(
                "ClassifyFunction", created, endpoint, LAYER / "models", "labelwise-classify"
            ),
        }
        settings = Settings.from_environ(env)
        dynamodb = session.client("dynamodb", endpoint_url=endpoint)
        key, _ = AwsKeyStore(settings.table_name, dynamodb=dynamodb).create("tenant-layer", "layer test")
        event = json.loads((REPO_ROOT / "events" / "classify-zero-shot.json").read_text(encoding="utf-8"))
        event["headers"]["authorization"] = f"Bearer {key}"
        sys_path = [str(BUILD / "ClassifyFunction"), str(LAYER / "python"), str(runtime)]

        # When the handler is imported (cold start) and invoked with the sample event
        result = subprocess.run(
            [python, "-I", "-B", "-c", f"import sys; sys.path[:0] = {sys_path!r}\n{INVOKE}"],
            input=json.dumps(event),
            env=env,
            cwd=BUILD / "ClassifyFunction",
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    # Then it answers 200 with one classification per input over the event's labels
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("RESPONSE "))
    response = json.loads(line.removeprefix("RESPONSE "))
    assert response["statusCode"] == 200, response
    body = json.loads(response["body"])
    request = json.loads(event["body"])
    assert len(body["data"]) == len(request["input"])
    assert {p["label"] for p in body["data"][0]["predictions"]} == set(request["labels"])
