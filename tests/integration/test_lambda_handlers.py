"""The Lambda entry points, invoked with API Gateway v2 events, against moto's server over HTTP.

Resources come from template.yaml (tests/support/template.py); the functions get the environment
the template gives them; the real int8 model answers.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from labelwise.server import LocalLambdaContext
from labelwise.settings import Settings, get_settings
from labelwise.storage.aws import AwsKeyStore, make_clients
from tests.support.lambda_stack import import_entry, lambda_environment, moto_stack

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"

pytestmark = pytest.mark.model


def load_event(name: str, key: str, body: Any | None = None) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    event = copy.deepcopy(event)
    event["headers"]["authorization"] = f"Bearer {key}"
    if body is not None:
        event["body"] = json.dumps(body)
        event["headers"]["content-length"] = str(len(event["body"]))
    return event


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    model_dir = Settings.from_environ().model_dir
    if not (model_dir / "multilingual-e5-small" / "model.onnx").exists():
        pytest.skip(f"int8 models not built in {model_dir}: run `make model`")
    mp = pytest.MonkeyPatch()
    with moto_stack(mp) as stack:
        modules = {}
        for name, logical_id in (("classify", "ClassifyFunction"), ("train", "TrainFunction")):
            env = lambda_environment(
                logical_id, stack.created, stack.endpoint, model_dir, f"labelwise-{name}"
            )
            for k, v in env.items():
                mp.setenv(k, v)
            get_settings.cache_clear()
            modules[name] = import_entry(f"lambda_{name}_app", REPO / "functions" / name / "app.py")
        settings = get_settings()
        dynamodb, _ = make_clients(settings)
        key, _ = AwsKeyStore(settings.table_name, dynamodb=dynamodb).create("tenant-int", "integration")
        yield {"key": key, **modules}
        get_settings.cache_clear()
    mp.undo()
    for name in ("lambda_classify_app", "lambda_train_app"):
        sys.modules.pop(name, None)


def invoke(module: ModuleType, event: dict[str, Any], context: Any) -> tuple[int, Any]:
    response = module.lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"])


def test_zero_shot_event_through_the_classify_function(deployed: dict[str, Any], lambda_context: Any) -> None:
    # Given the sample zero-shot event with a real key
    event = load_event("classify-zero-shot.json", deployed["key"])
    # When the classify function handles it
    status, out = invoke(deployed["classify"], event, lambda_context)
    # Then it answers in Jina's shape with the e5 model
    assert status == 200, out
    assert out["model"] == "multilingual-e5-small"
    assert len(out["data"]) == len(json.loads(event["body"])["input"])
    assert out["usage"]["total_tokens"] > 0


def test_train_then_classify_across_the_two_functions(deployed: dict[str, Any], lambda_context: Any) -> None:
    # Given a classifier trained by the train function (DynamoDB + S3 in moto)
    status, trained = invoke(deployed["train"], load_event("train.json", deployed["key"]), lambda_context)
    assert status == 200, trained
    cid = trained["classifier_id"]
    # When the classify function classifies with its id
    event = load_event(
        "classify-few-shot.json", deployed["key"], {"classifier_id": cid, "input": ["I was billed twice"]}
    )
    status, out = invoke(deployed["classify"], event, lambda_context)
    # Then the learned label comes back
    assert status == 200, out
    assert out["data"][0]["prediction"] == "billing"
    # And the train function lists and deletes it
    event = load_event("list-classifiers.json", deployed["key"])
    status, listed = invoke(deployed["train"], event, lambda_context)
    assert status == 200 and cid in [c["classifier_id"] for c in listed]


def test_embeddings_event_through_the_classify_function(
    deployed: dict[str, Any], lambda_context: Any
) -> None:
    # Given the sample embeddings event (the template routes POST /v1/embeddings to ClassifyFunction)
    event = load_event("embeddings.json", deployed["key"])
    # When the classify function handles it
    status, out = invoke(deployed["classify"], event, lambda_context)
    # Then it answers one unit vector per text, from the model a Jina name resolves to
    assert status == 200, out
    assert out["model"] == "multilingual-e5-small" and out["usage"]["total_tokens"] > 0
    assert [row["index"] for row in out["data"]] == [0, 1]
    assert all(abs(sum(v * v for v in row["embedding"]) - 1) < 1e-3 for row in out["data"])


def test_train_function_lists_classifiers_by_post_as_jina_does(
    deployed: dict[str, Any], lambda_context: Any
) -> None:
    # Given the listing event sent as Jina's POST /v1/classifiers
    event = load_event("list-classifiers.json", deployed["key"])
    event.update(routeKey="POST /v1/classifiers")
    event["requestContext"]["http"]["method"] = "POST"
    # When the train function handles it
    status, out = invoke(deployed["train"], event, lambda_context)
    # Then it answers the bare array of summaries
    assert status == 200 and isinstance(out, list), out


def test_classify_function_does_not_serve_train_routes(deployed: dict[str, Any], lambda_context: Any) -> None:
    status, out = invoke(deployed["classify"], load_event("train.json", deployed["key"]), lambda_context)
    assert status == 404 and out["code"] == "ROUTE_NOT_FOUND"


def test_health_route_answers_without_a_key_in_lambda(deployed: dict[str, Any], lambda_context: Any) -> None:
    # Given the template's GET /health route (ClassifyFunction), called with no Authorization header
    event = load_event("classify-zero-shot.json", "unused")
    del event["headers"]["authorization"]
    event.update(routeKey="GET /health", rawPath="/health", body=None)
    event["requestContext"]["http"].update(method="GET", path="/health")
    event["headers"].pop("content-length", None)
    # When the classify function handles it
    status, out = invoke(deployed["classify"], event, lambda_context)
    # Then it answers {"status": "ok"} with the models this deployment serves
    assert status == 200, out
    assert out["status"] == "ok" and "multilingual-e5-small" in out["models"] and out["version"]


def test_bad_key_is_401_in_lambda(deployed: dict[str, Any], lambda_context: Any) -> None:
    status, out = invoke(
        deployed["classify"], load_event("classify-zero-shot.json", "lw_wrong"), lambda_context
    )
    assert status == 401 and out["code"] == "AUTH_INVALID_API_KEY" and out["request_id"]


def test_logs_carry_request_ids_and_never_keys_or_example_text(
    deployed: dict[str, Any], lambda_context: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    # Given a train request whose examples carry a marker text
    marker = "zq-private-example-marker"
    body = {"input": [{"text": f"{marker} one", "label": "a"}, {"text": f"{marker} two", "label": "b"}]}
    event = load_event("train.json", deployed["key"], body)
    event["requestContext"]["requestId"] = "req-log-test"
    capfd.readouterr()
    buffer = io.StringIO()
    handlers = [h for h in logging.getLogger("labelwise").handlers if isinstance(h, logging.StreamHandler)]
    assert handlers, "the Lambda entry gives the labelwise logger Powertools' handler"
    previous = [h.setStream(buffer) for h in handlers]
    # When the train function handles it
    try:
        status, out = invoke(deployed["train"], event, lambda_context)
    finally:
        for handler, stream in zip(handlers, previous, strict=True):
            handler.setStream(stream)
    assert status == 200, out
    logged = buffer.getvalue() + "".join(capfd.readouterr())
    # Then no log line holds the example text or the key
    assert marker not in logged
    assert deployed["key"] not in logged
    # And the access line is structured JSON with the request id, route, status, model and key id
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("route") == "/v1/train"]
    assert access, logged
    assert access[0]["correlation_id"] == "req-log-test"
    assert access[0]["status"] == 200 and access[0]["model"] == "multilingual-e5-small"
    assert access[0]["key_id"].startswith("key_")
    # And metrics (EMF) are emitted per route, status and model
    emf = [line for line in lines if "_aws" in line]
    assert emf and emf[-1]["route"] == "POST /v1/train" and emf[-1]["status"] == "200"
    assert emf[-1]["Requests"] == [1.0] or emf[-1]["Requests"] == 1.0


@dataclass
class RemainingContext(LocalLambdaContext):
    """A Lambda context whose invocation has ``remaining_ms`` left."""

    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_request_that_would_outlive_its_invocation_answers_504_in_lambda(deployed: dict[str, Any]) -> None:
    # Given an invocation with 2.6 s left (0.6 s of budget after the 2 s margin) and a request for the
    # real e5 model that takes longer, within the token cap: 512 inputs of ~100 words (~57,000 tokens)
    text = " ".join(["the parcel with my refund for the double charge has not arrived yet"] * 8)
    body = {"input": [f"{i} {text}" for i in range(512)], "labels": ["billing", "shipping"]}
    event = load_event("classify-zero-shot.json", deployed["key"], body)
    context = RemainingContext(function_name="labelwise-classify", aws_request_id="r504", remaining_ms=2600)
    # When the classify function handles it
    started = time.perf_counter()
    status, out = invoke(deployed["classify"], event, context)
    elapsed = time.perf_counter() - started
    # Then it answers 504 SERVICE_TIMEOUT in Jina's envelope, pointing to S3 uploads, before the
    # invocation's time is up (Lambda would have killed it: API Gateway's 500/503 with no body)
    assert status == 504, out
    assert out["code"] == "SERVICE_TIMEOUT" and "S3 uploads" in out["detail"] and out["request_id"]
    assert elapsed < 2.6
