"""Lambda entry point for ``POST /v1/train`` and ``/v1/classifiers`` (writes: DynamoDB + S3)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from labelwise.api.app import create_app
from labelwise.runtime import build_services
from labelwise.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# The library logs through the standard logging module: give its loggers Powertools' JSON format,
# so every line carries the correlation (request) id.
copy_config_to_registered_loggers(source_logger=logger)

services = build_services(get_settings())
services.warm_up()  # load the default model during INIT, not on the first request
app = create_app(services, scope="train", metrics=metrics)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
