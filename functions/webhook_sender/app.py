"""Webhook sender (SQS trigger on the FIFO delivery queue): each delivery POSTed, signed, to its
webhook; failures retried with backoff. Logic in bourse.consumers.webhook_sender."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.consumers.webhook_sender import WebhookSender
from bourse.lambda_gc import frozen_after_init
from bourse.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# Built once per container: the HTTP session, boto3 clients and cached webhooks.
sender = WebhookSender.from_settings(get_settings(), logger, metrics)


@frozen_after_init
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return sender.handle(event)
