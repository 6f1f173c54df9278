"""Lambda entry point for bulk uploads: an SQS batch of S3 ``ObjectCreated`` events (``uploads/``) and
of the runner's own follow-up checkpoints -> :class:`labelwise.uploads.jobs.UploadJobs` (built by
:func:`labelwise.runtime.build_upload_jobs`).

Thin on purpose: Powertools' :class:`BatchProcessor` hands each message to the library and reports
the ones that raised as ``batchItemFailures`` (the queue retries them, then dead-letters them). Files
that cannot be used are not failures: the library writes ``errors/<path>.json`` for them.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from labelwise.runtime import build_upload_jobs
from labelwise.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# Report every failed message in batchItemFailures (never fail the invocation as a whole).
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


#: Replaced by tests that inject other adapters or a fake embedder.
jobs = build_upload_jobs(get_settings())


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    for outcome in jobs.handle_message(record.body, lambda_context.get_remaining_time_in_millis):
        logger.info(
            "upload %s: %s",
            outcome.status,
            outcome.key,
            extra={"status": outcome.status, "detail": outcome.detail, "parts": outcome.parts},
        )
        metrics.add_metric(name=f"Uploads.{outcome.status}", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="UploadRecordsClassified", unit=MetricUnit.Count, value=outcome.classified)
        metrics.add_metric(name="UploadRecordsRejected", unit=MetricUnit.Count, value=outcome.rejected)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    metrics.add_metric(name="UploadMessages", unit=MetricUnit.Count, value=len(event.get("Records", [])))
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
