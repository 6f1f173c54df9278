"""Every request the Jina reference's request schemas describe is accepted (issue 13 item 2).

The bodies are built from the copied reference (tests/contract): every property of every request
schema, each alternative of ``input`` (a string, a ``TextDoc`` / ``ImageDoc``, a training item, or a
list of them) and of ``labels`` (a list, or named groups), every model name of its enums. A property
the reference adds later fails here until labelwise accepts it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from labelwise.api.app import create_app
from labelwise.embedding.registry import ModelRegistry
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder
from tests.support.reference import jina_spec

LABELS = ("sports", "politics")
TEXTS = ("goal scored by the striker", "parliament passed the budget")
#: A 1x1 PNG.
IMAGE = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGP4z8DwHwAFAAH/"
    "iZk9HQAAAABJRU5ErkJggg=="
)


def schema_named(ref: str) -> dict[str, Any]:
    schema: dict[str, Any] = jina_spec()["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return schema


def item(alternative: dict[str, Any], i: int) -> Any:
    """The ``i``-th input item of one alternative of the reference: every property of its schema."""
    if alternative.get("type") == "string":
        return TEXTS[i % 2]
    name = alternative["$ref"].rsplit("/", 1)[-1]
    values = {"text": TEXTS[i % 2], "image": IMAGE, "label": LABELS[i % 2]}
    body = {prop: values[prop] for prop in schema_named(name)["properties"]}  # KeyError: a new field
    return body


def input_forms(schema: dict[str, Any]) -> list[Any]:
    """One ``input`` per alternative the reference allows: single items and lists of 2."""
    forms: list[Any] = []
    for alternative in schema.get("anyOf", [schema]):
        if alternative.get("type") == "array":
            for each in alternative["items"].get("anyOf", [alternative["items"]]):
                forms.append([item(each, 0), item(each, 1)])
        else:
            forms.append(item(alternative, 0))
    return forms


def value_forms(prop: str, schema: dict[str, Any], classifier_id: str) -> list[Any]:
    """Every form of one request property the reference defines."""
    if prop == "model":
        return list(schema.get("enum", [schema.get("const")]))
    if prop == "input":
        return input_forms(schema)
    if prop == "labels":
        return [list(LABELS), {"topic": list(LABELS), "tone": ["calm", "angry"]}]
    if prop == "classifier_id":
        return [classifier_id]
    if prop == "access":
        return ["public", "private"]
    if prop == "num_iters":
        return [schema.get("default", 10), 3]
    raise AssertionError(f"the reference's request property {prop!r} has no form here: add it")


def request_bodies(path: str, classifier_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(schema name, body): per request schema of ``path``, a body per form of each property."""
    spec = jina_spec()["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    refs = {
        ref for option in spec["anyOf"] for ref in option.get("discriminator", {}).get("mapping", {}).values()
    }
    refs |= {option["$ref"] for option in spec["anyOf"] if "$ref" in option}
    bodies = []
    for ref in sorted(refs):
        schema = schema_named(ref)
        forms = {p: value_forms(p, s, classifier_id) for p, s in schema["properties"].items()}
        base = {p: values[0] for p, values in forms.items()}
        bodies.append((schema["title"], base))
        for prop, values in forms.items():
            bodies.extend((schema["title"], {**base, prop: value}) for value in values[1:])
    return bodies


@pytest.fixture
def client(settings: Settings, api_event: Any, lambda_context: Any):
    services = Services(settings=settings, registry=ModelRegistry.from_embedders([HashingEmbedder()]))
    app = create_app(services, scope="all")
    key, _ = services.keys.create("tenant-a", "a")

    def post(path: str, body: Any) -> tuple[int, Any]:
        event = api_event("POST", path, body, headers={"authorization": f"Bearer {key}"})
        response = app.resolve(event, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    return post


def uses_images(body: dict[str, Any]) -> bool:
    return "jina-clip" in str(body.get("model")) or IMAGE in json.dumps(body)


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/train"])
def test_every_request_the_reference_describes_is_accepted(client: Any, path: str) -> None:
    # Given a classifier, and a body for every form of every property of the reference's requests
    status, trained = client("/v1/train", {"input": [item({"$ref": "TextTrainingItem"}, i) for i in (0, 1)]})
    assert status == 200, trained
    bodies = request_bodies(path, trained["classifier_id"])
    assert len(bodies) >= 20
    for name, body in bodies:
        # When it is sent
        status, out = client(path, body)
        # Then text requests are answered, and image requests (this deployment serves no image
        # model) refused for that reason alone: no body is a schema violation
        if uses_images(body):
            assert status == 400 and out["code"] in {"INPUT_UNSUPPORTED", "INPUT_MODEL_NOT_FOUND"}, (
                name,
                out,
            )
        else:
            assert status == 200, (name, body, out)


def test_the_reference_has_the_request_shapes_the_issue_names() -> None:
    # The guard against an empty parametrisation: TextDoc and ImageDoc inputs, single update items
    bodies = request_bodies("/v1/classify", "cid") + request_bodies("/v1/train", "cid")
    inputs = [json.dumps(body["input"]) for _, body in bodies]
    assert any(i.startswith('{"text"') for i in inputs) and any(i.startswith('{"image"') for i in inputs)
    assert any(name == "UpdateTrainingRequest" and isinstance(b["input"], dict) for name, b in bodies)
