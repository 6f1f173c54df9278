"""``POST /v1/embeddings`` (issue 13 item 12) over the fake model: Jina's and OpenAI's shape, the
vectors classify compares, float and base64 alike, and Jina's and Cohere's model names as aliases."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from labelwise.api.app import create_app
from labelwise.embedding.registry import ModelRegistry
from labelwise.services import Services
from labelwise.settings import Settings
from tests.support.fakes import HashingEmbedder
from tests.support.reference import COHERE_EMBED_MODELS, jina_model_names

TEXTS = ["Refund my last order please", "Where is my parcel?"]


@pytest.fixture
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture
def call(settings: Settings, embedder: HashingEmbedder, api_event: Any, lambda_context: Any):
    services = Services(settings=settings, registry=ModelRegistry.from_embedders([embedder]))
    app = create_app(services, scope="classify")
    key, _ = services.keys.create("tenant-a", "a")

    def invoke(body: Any) -> tuple[int, Any]:
        event = api_event("POST", "/v1/embeddings", body, headers={"authorization": f"Bearer {key}"})
        response = app.resolve(event, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    return invoke


def test_float_embeddings_are_the_input_vectors_classify_compares(
    call: Any, embedder: HashingEmbedder
) -> None:
    # When two texts are embedded as floats (the default)
    status, out = call({"input": TEXTS})
    # Then each comes back, in order, as the input-role vector of the served model, with its tokens
    assert status == 200, out
    assert out["object"] == "list" and out["model"] == embedder.manifest.name
    assert [row["index"] for row in out["data"]] == [0, 1]
    expected = embedder.embed(TEXTS, role="input")
    got = np.array([row["embedding"] for row in out["data"]], dtype=np.float32)
    np.testing.assert_allclose(got, expected.vectors, atol=1e-6)
    assert out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] == sum(expected.token_counts)


@pytest.mark.parametrize("field", ["embedding_type", "encoding_format"])
def test_base64_is_the_same_vectors_as_little_endian_float32(call: Any, field: str) -> None:
    # When the same texts are asked as base64 (Jina's `embedding_type`, OpenAI's `encoding_format`)
    _, floats = call({"input": TEXTS})
    status, out = call({"input": TEXTS, field: "base64"})
    # Then each decodes to the float answer's vector
    assert status == 200, out
    for as_b64, as_float in zip(out["data"], floats["data"], strict=True):
        vector = np.frombuffer(base64.b64decode(as_b64["embedding"]), dtype="<f4")
        np.testing.assert_array_equal(vector, np.asarray(as_float["embedding"], dtype=np.float32))


def test_a_single_text_is_a_list_of_one(call: Any) -> None:
    status, out = call({"input": TEXTS[0], "normalized": True, "task": "classification"})
    assert status == 200 and len(out["data"]) == 1, out


@pytest.mark.parametrize(
    "model", [*(n for n in jina_model_names() if not n.startswith("jina-clip")), *COHERE_EMBED_MODELS]
)
def test_jina_and_cohere_model_names_are_aliases(call: Any, embedder: HashingEmbedder, model: str) -> None:
    # When a Jina or Cohere embedding model is named
    status, out = call({"model": model, "input": TEXTS})
    # Then the served model answers, and says so
    assert status == 200, out
    assert out["model"] == embedder.manifest.name


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"input": []}, 400),
        ({"input": ["ok", "  "]}, 400),
        ({"input": TEXTS, "model": "no-such-model"}, 400),
        ({"input": TEXTS, "embedding_type": "binary"}, 422),
        ({"input": [{"image": "aGk="}]}, 422),
    ],
)
def test_bad_embeddings_requests_are_4xx_in_the_envelope(call: Any, body: Any, status: int) -> None:
    got, out = call(body)
    assert got == status and out["code"] and out["request_id"], out


def test_dimensions_equal_to_the_models_is_accepted(call: Any, embedder: HashingEmbedder) -> None:
    # When `dimensions` (Jina's and OpenAI's field) names the served model's own size
    status, out = call({"input": TEXTS, "dimensions": embedder.manifest.dimension})
    # Then the vectors come back at that size
    assert status == 200, out
    assert [len(row["embedding"]) for row in out["data"]] == [embedder.manifest.dimension] * len(TEXTS)


@pytest.mark.parametrize("dimensions", [16, 128])
def test_dimensions_the_model_cannot_give_is_a_400_not_silently_ignored(
    call: Any, embedder: HashingEmbedder, dimensions: int
) -> None:
    # Given a served model that was not trained for truncated (Matryoshka) vectors
    assert embedder.manifest.dimension == 64
    # When a client asks for fewer or more dimensions than it has
    status, out = call({"input": TEXTS, "dimensions": dimensions})
    # Then it gets a 400 in the error envelope naming the model's size, not vectors of another size
    assert status == 400, out
    assert out["code"] == "INPUT_INVALID" and out["request_id"]
    assert "64" in out["detail"] and "dimensions" in out["detail"]


@pytest.mark.parametrize("dimensions", [0, -3, "many", 1.5])
def test_a_malformed_dimensions_is_a_422(call: Any, dimensions: Any) -> None:
    status, out = call({"input": TEXTS, "dimensions": dimensions})
    assert status == 422 and out["code"] and out["request_id"], out
