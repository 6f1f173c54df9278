"""``POST /v1/embeddings``: the embeddings shape of Jina's and OpenAI's APIs.

The vectors are exactly the ones labelwise classifies with (the ``input`` role of the model,
prefix included), so users can check labelwise's scores with their own tools.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from labelwise.api.schemas import request_config

EmbeddingType = Literal["float", "base64"]


class EmbeddingsRequest(BaseModel):
    """Jina's / OpenAI's embeddings request; fields neither defines are ignored."""

    model_config = request_config({"model": "jina-embeddings-v3", "input": ["Refund my order"]})

    model: str | None = Field(
        None,
        description="Model name or alias (Jina's, Cohere's and OpenAI-style names of the served models are "
        "accepted). Defaults to the deployment's default model.",
    )
    input: str | list[str] = Field(description="A text or a list of 1 to 1,024 non-empty texts.")
    normalized: bool = Field(
        True,
        description="L2-normalise each vector. The served models normalise inside the graph, so the "
        "vectors are unit length either way (`false` is accepted for compatibility).",
    )
    embedding_type: EmbeddingType = Field(
        "float",
        description="`float`: a list of numbers. `base64`: the little-endian float32 bytes, base64-encoded "
        "(OpenAI's `encoding_format` is accepted as a synonym).",
    )
    dimensions: int | None = Field(
        None,
        ge=1,
        description="Length of the vectors wanted (Jina's and OpenAI's field). The served models were not "
        "trained for truncated (Matryoshka) vectors, so only the model's own size is accepted; any other "
        "size is a 400 naming it, rather than vectors that silently differ from what was asked.",
    )
    task: str | None = Field(
        None,
        description="Jina's task hint. Accepted and ignored: labelwise embeds every text the way it "
        "classifies inputs.",
    )

    @model_validator(mode="before")
    @classmethod
    def _openai_encoding_format(cls, value: Any) -> Any:
        if isinstance(value, dict) and "embedding_type" not in value and "encoding_format" in value:
            return {**value, "embedding_type": value["encoding_format"]}
        return value


class EmbeddingObject(BaseModel):
    object: Literal["embedding"] = Field(default="embedding", description="Always `embedding`.")
    index: int = Field(description="Position of the text in the request.")
    embedding: list[float] | str = Field(description="The vector (a list, or base64 float32 bytes).")


class EmbeddingsUsage(BaseModel):
    total_tokens: int = Field(description="Tokens embedded (prefix and special tokens included).")
    prompt_tokens: int = Field(description="Same as `total_tokens`.")


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = Field(default="list", description="Always `list`.")
    model: str = Field(description="Canonical name of the model that answered.")
    data: list[EmbeddingObject] = Field(description="One embedding per input text, in request order.")
    usage: EmbeddingsUsage = Field(description="Tokens embedded by this request.")
