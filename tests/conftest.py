"""Shared fixtures: settings in a temp dir, a Lambda context, API Gateway v2 events."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from labelwise.server import LocalLambdaContext, http_event
from labelwise.settings import Settings
from tests.support.fakes import fake_model_settings

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.model_fixtures"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fake_model_settings(tmp_path)


@pytest.fixture
def lambda_context() -> LocalLambdaContext:
    return LocalLambdaContext(function_name="labelwise-test", aws_request_id="test-request-id")


ApiEvent = Callable[..., dict[str, Any]]


@pytest.fixture
def api_event() -> ApiEvent:
    """Build an API Gateway HTTP API (payload v2.0) event: ``api_event("POST", "/v1/classify", body)``."""

    def build(
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> dict[str, Any]:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        hdrs = {"content-type": "application/json", "host": "localhost", **(headers or {})}
        return http_event(method, path, hdrs, data, "127.0.0.1", "req-123")

    return build
