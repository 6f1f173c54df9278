"""Lambda entry point for ``POST /v1/train`` and ``/v1/classifiers`` (writes: DynamoDB + S3)."""

from __future__ import annotations

from labelwise.api.lambda_entry import http_lambda

lambda_handler = http_lambda("train")
