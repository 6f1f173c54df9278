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
    max_labels: int = Field(256, ge=1, description="Labels per request (and per classifier).")
    max_label_groups: int = Field(8, ge=1, description="Named label groups per request.")
    max_label_chars: int = Field(256, ge=1, description="Characters per label.")
    max_inputs: int = Field(1024, ge=1, description="Inputs per request.")
    max_body_bytes: int = Field(6 * 1024 * 1024, ge=1024, description="Largest accepted request body.")
    label_cache_size: int = Field(4096, ge=0, description="Label embeddings kept per process.")

    # Few-shot and storage
    store: Literal["local", "aws"] = Field("local", description="Classifier/key store adapter.")
    table_name: str = Field("labelwise", description="DynamoDB table (store=aws).")
    bucket_name: str = Field("labelwise", description="S3 bucket for weights and uploads (store=aws).")
    aws_endpoint_url: str | None = Field(None, description="Override for AWS endpoints (moto in tests).")
    max_classifiers_per_key: int = Field(1000, ge=1)
    require_auth: bool = Field(True, description="Require `Authorization: Bearer <key>` on every route.")

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
