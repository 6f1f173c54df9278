"""The reference APIs labelwise conforms to: Jina's classifier OpenAPI (copied under tests/contract)
and Cohere's documented embed model names."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

JINA_SPEC = Path(__file__).resolve().parents[1] / "contract" / "jina-classifier-openapi-2026.04.json"

#: Cohere's documented embed model names (v2, v3 and v4), as Cohere's classify accepted them.
COHERE_EMBED_MODELS = (
    "embed-english-v2.0",
    "embed-english-light-v2.0",
    "embed-multilingual-v2.0",
    "embed-english-v3.0",
    "embed-english-light-v3.0",
    "embed-multilingual-v3.0",
    "embed-multilingual-light-v3.0",
    "embed-v4.0",
)


@cache
def jina_spec() -> dict[str, Any]:
    """Jina's classifier OpenAPI (schemas only)."""
    spec: dict[str, Any] = json.loads(JINA_SPEC.read_text(encoding="utf-8"))
    return spec


def jina_model_names() -> list[str]:
    """Every model name in the Jina reference's request discriminators (classify and train)."""
    names: set[str] = set()
    for path in ("/v1/classify", "/v1/train"):
        schema = jina_spec()["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        for option in schema["anyOf"]:
            names.update(option.get("discriminator", {}).get("mapping", {}))
    return sorted(names)
