"""The Lambda entry of an HTTP function, built once per cold start: Powertools Logger, Tracer and
Metrics around the library's resolver for one API scope. ``functions/classify/app.py`` and
``functions/train/app.py`` are one line each on top of this."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.typing import LambdaContext

from labelwise.api.app import Scope, create_app
from labelwise.runtime import build_services
from labelwise.settings import get_settings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


def http_lambda(scope: Scope) -> Handler:
    """Settings from the environment, services with the default model loaded (during INIT, not on
    the first request), and the decorated handler that resolves API Gateway HTTP API events."""
    logger = Logger()
    tracer = Tracer()
    metrics = Metrics()
    # The library logs through the standard logging module: give its loggers Powertools' JSON
    # format, so every line carries the correlation (request) id.
    copy_config_to_registered_loggers(source_logger=logger)

    services = build_services(get_settings())
    services.warm_up()
    app = create_app(services, scope=scope, metrics=metrics)

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    @tracer.capture_lambda_handler(capture_response=False)
    @metrics.log_metrics(capture_cold_start_metric=True)
    def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return app.resolve(event, context)

    handler: Handler = lambda_handler  # the decorators are untyped
    return handler
