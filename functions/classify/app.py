"""Lambda entry point for ``POST /v1/classify`` and ``POST /v1/embeddings`` (read-only: models,
classifier weights)."""

from __future__ import annotations

from labelwise.api.lambda_entry import http_lambda

lambda_handler = http_lambda("classify")
