"""Webhook dispatcher (MSK trigger on bourse.events): the user-data events of accounts with a
webhook or a queue, enqueued once each by seq. Logic in bourse.consumers.webhook_dispatcher."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.consumers.webhook_dispatcher import Dispatcher
from bourse.lambda_gc import frozen_after_init
from bourse.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# Built once per container: boto3 clients and the registrations outlive invocations.
dispatcher = Dispatcher.from_settings(get_settings(), logger, metrics)


@frozen_after_init
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dispatcher.handle(event)
