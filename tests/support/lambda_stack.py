"""template.yaml's stack in moto's server, and the Lambda entry points run against it (integration tests).

:func:`moto_stack` starts moto with the fake credentials in the environment and creates the
template's resources; :func:`lambda_environment` is the environment Lambda gives a function of the
template, pointed at moto and a model directory; :func:`import_entry` imports a function's handler
file as Lambda does (a fresh module, the environment already set).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from tests.support.moto_server import FAKE_AWS_ENV, moto_server
from tests.support.template import CreatedResources, create_resources, function_environment


@dataclass
class MotoStack:
    endpoint: str
    session: Any  # boto3.Session
    created: CreatedResources


@contextlib.contextmanager
def moto_stack(mp: pytest.MonkeyPatch) -> Iterator[MotoStack]:
    """moto's server holding template.yaml's resources; :data:`FAKE_AWS_ENV` set through ``mp``."""
    with moto_server() as endpoint:
        for k, v in FAKE_AWS_ENV.items():
            mp.setenv(k, v)
        session = boto3.Session(region_name="us-east-1")
        yield MotoStack(endpoint, session, create_resources(session, endpoint_url=endpoint))


def lambda_environment(
    function_id: str, created: CreatedResources, endpoint: str, model_dir: Path, function_name: str
) -> dict[str, str]:
    """The environment template.yaml gives ``function_id``, with AWS at ``endpoint`` (moto), the
    models in ``model_dir`` (``/opt/models`` in Lambda), tracing off and a test metrics namespace."""
    return {
        **function_environment(function_id, created),
        "LABELWISE_MODEL_DIR": str(model_dir),
        "LABELWISE_AWS_ENDPOINT_URL": endpoint,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "labelwise-test",
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
    }


def import_entry(module_name: str, path: Path) -> ModuleType:
    """Import the handler file ``path`` as ``module_name``, as Lambda does (fresh module, env set first)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
