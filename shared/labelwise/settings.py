"""Settings: one pydantic model read from the environment once per process (cold start).

Every variable is ``LABELWISE_<FIELD>`` in upper case, e.g. ``LABELWISE_DATA_DIR``. Logic receives a
:class:`Settings` instance; only :func:`get_settings` (and the CLI) look at ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ENV_PREFIX = "LABELWISE_"
LAMBDA_MODEL_DIR = Path("/opt/models")


def _default_cache_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "labelwise"


def _default_data_dir(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "labelwise"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", protected_namespaces=())

    # Where things live
    data_dir: Path = Field(description="Local store, keys and caches of `labelwise serve`.")
    cache_dir: Path = Field(description="Build cache: downloaded wheels and built models.")
    model_dir: Path = Field(description="Directory holding one sub-directory per built model.")
    default_model: str = Field("multilingual-e5-small", description="Model used when a request names none.")

    # Request limits
    max_labels: int = Field(
        512, ge=1, description="Labels per request as a plain list (Jina's limit), and per classifier."
    )
    max_label_groups: int = Field(8, ge=1, description="Named label groups per request.")
    max_labels_per_group: int = Field(64, ge=1, description="Labels in each named group (Jina's limit).")
    max_label_chars: int = Field(256, ge=1, description="Characters per label.")
    max_inputs: int = Field(1024, ge=1, description="Inputs per request.")
    max_body_bytes: int = Field(6 * 1024 * 1024, ge=1024, description="Largest accepted request body.")
    max_response_bytes: int = Field(
        6_000_000,
        ge=64 * 1024,
        description="Largest answer a request may need (Lambda's 6 MB synchronous response limit, "
        "counted on the serialised proxy envelope); requests whose answer could exceed it get 400 "
        "RESPONSE_TOO_LARGE.",
    )
    max_request_tokens: int = Field(
        90_000,
        ge=0,
        description="Tokens one request may embed (inputs, labels, examples; images count 1 each), "
        "counted with the model's tokenizer before any embedding; more is refused with 413 "
        "INPUT_TOKEN_LIMIT_EXCEEDED (0: no cap). Basis: multilingual-e5-small int8 embeds about 4,700 "
        "tokens/s on one thread (scripts/measure_token_rate.py), so 90,000 tokens are ~20 s of work "
        "at one vCPU, inside the API's 30 s. Bulk work goes through S3 uploads (docs/uploads.md).",
    )
    label_cache_size: int = Field(4096, ge=0, description="Label embeddings kept per process.")
    http_idle_timeout_s: float = Field(
        60.0,
        gt=0,
        description="`labelwise serve`: seconds one read or write on a connection may wait for the client "
        "(before a request, between kept-alive requests, inside a request's headers or body) before the "
        "connection is closed; a request cut off inside its body is answered 408 REQUEST_TIMEOUT.",
    )
    http_request_timeout_s: float = Field(
        120.0,
        gt=0,
        description="`labelwise serve`: seconds a whole request (request line, headers and body) may take to "
        "arrive, counted from when the server starts waiting for it, so that a client trickling bytes "
        "inside the idle timeout cannot hold a connection for good.",
    )
    http_max_connections: int = Field(
        128,
        ge=1,
        description="`labelwise serve`: connections served at once (one thread each); a connection beyond "
        "them is answered 503 SERVICE_UNAVAILABLE with Retry-After at once and closed.",
    )
    request_budget_s: float = Field(
        25.0,
        gt=0,
        description="Time one API request may spend working (checked between embedding calls and "
        "model calls); past it the answer is 504 SERVICE_TIMEOUT pointing to S3 uploads. Below API "
        "Gateway's 30 s integration limit and the functions' 30 s timeout.",
    )
    request_budget_margin_ms: int = Field(
        2000,
        ge=0,
        description="In Lambda the budget is also at most the invocation's remaining time "
        "(context.get_remaining_time_in_millis()) less this margin, kept to answer.",
    )

    # Few-shot and storage
    store: Literal["local", "aws"] = Field("local", description="Classifier/key store adapter.")
    table_name: str = Field("labelwise", description="DynamoDB table (store=aws).")
    bucket_name: str = Field("labelwise", description="S3 bucket for weights and uploads (store=aws).")
    aws_endpoint_url: str | None = Field(None, description="Override for AWS endpoints (moto in tests).")
    max_classifiers_per_key: int = Field(1000, ge=1)
    require_auth: bool = Field(True, description="Require `Authorization: Bearer <key>` on every route.")

    # CLIP (the real zero-shot image model) when a deployer provides its weights
    clip_source: str | None = Field(
        default=None,
        description="CLIP ONNX model: a local directory, s3://bucket/prefix, or hf://org/name[@rev] "
        "(downloaded once into the cache dir). Answers jina-clip-v1/-v2 requests when set.",
    )
    clip_name: str = Field(default="clip", description="Name the configured CLIP model is served under.")

    # Quotas per API key (0 = unlimited); API Gateway throttling in template.yaml is the outer guard
    rate_limit_requests_per_minute: int = Field(600, ge=0, description="Requests per key per minute.")
    rate_limit_tokens_per_minute: int = Field(
        1_000_000, ge=0, description="Embedded tokens per key per minute."
    )
    rate_limit_fail_open: bool = Field(
        False,
        description="When the quota table (store=aws) errors: admit requests without a quota check "
        "(true) or answer 503 SERVICE_UNAVAILABLE (false, the default: fail closed).",
    )

    # --- Images and the SageMaker embedding endpoint (labelwise.images, labelwise.endpoint) ---
    image_max_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Largest image (fetched or base64).")
    image_max_pixels: int = Field(50_000_000, ge=1, description="Images with more pixels are refused.")
    max_request_pixels: int = Field(
        64_000_000,
        ge=1,
        description="Pixels of all of a request's images together, read from their headers before "
        "any is decoded; more is refused with 413 INPUT_PIXEL_LIMIT_EXCEEDED. Images are then decoded "
        "and embedded in chunks of at most 8 images and 16 MP, so one chunk's pixels are alive at once.",
    )
    image_fetch_timeout_s: float = Field(10.0, gt=0, description="Total time to fetch one image URL.")
    image_fetch_deadline_s: float = Field(
        15.0,
        gt=0,
        description="Time for fetching all of a request's image URLs (4 at a time), under the API's 30 s; "
        "fetches not done by then are abandoned and the request answers 504 SERVICE_TIMEOUT.",
    )
    image_max_redirects: int = Field(3, ge=0, le=10, description="Redirects followed per image URL.")
    sagemaker_endpoint_name: str | None = Field(
        None, description="SageMaker endpoint embedding images and large batches (unset: all in-process)."
    )
    endpoint_url: str | None = Field(
        None, description="HTTP URL of a labelwise endpoint server (local/tests; instead of SageMaker)."
    )
    endpoint_batch_threshold: int = Field(
        64, ge=1, description="Text batches larger than this go to the endpoint when one is configured."
    )
    endpoint_fallback: Literal["local", "fail"] = Field(
        "local", description="When the endpoint fails: embed in-process (`local`) or answer 503 (`fail`)."
    )
    endpoint_timeout_s: float = Field(
        8.0,
        gt=0,
        description="Read timeout of one call to the endpoint (one attempt, no retry; then the fallback).",
    )

    # --- Bulk uploads (labelwise.uploads: uploads/ -> results/, errors/; docs/uploads.md) ---
    uploads_queue_url: str | None = Field(
        None, description="SQS queue of upload events; follow-up (checkpoint) messages go here too."
    )
    uploads_batch_size: int = Field(64, ge=1, description="Records per embedding call (at most max_inputs).")
    uploads_part_records: int = Field(
        2000, ge=1, description="Records per results part (the checkpoint unit); one must fit an invocation."
    )
    uploads_safety_margin_ms: int = Field(
        20_000, ge=0, description="Time kept in reserve per invocation (write the part, send the checkpoint)."
    )
    uploads_max_line_bytes: int = Field(
        1024 * 1024, ge=1024, description="Longer lines (or CSV records) are rejected, never held in memory."
    )
    uploads_max_hops: int = Field(
        1000,
        ge=1,
        description="Follow-up (checkpoint) messages one file may send through the queue; a file that "
        "needs more fails with errors/<path>.json (bounds the SQS -> Lambda -> SQS chain). Each "
        "invocation finishes at least one part, so the default covers >= 1,000 x uploads_part_records "
        "records (2,000,000 at the defaults; an upload's object of 6 GB at ~3 KB per record).",
    )
    uploads_max_reported_rejections: int = Field(
        1000, ge=0, description="Rejected lines listed in a summary (all are counted)."
    )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            key[len(ENV_PREFIX) :].lower(): value for key, value in env.items() if key.startswith(ENV_PREFIX)
        }
        values.setdefault("cache_dir", _default_cache_dir(env))
        values.setdefault("data_dir", _default_data_dir(env))
        if "model_dir" not in values:
            in_lambda = "AWS_LAMBDA_FUNCTION_NAME" in env
            values["model_dir"] = LAMBDA_MODEL_DIR if in_lambda else Path(str(values["cache_dir"])) / "models"
        return cls.model_validate(values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (cold start)."""
    return Settings.from_environ()
