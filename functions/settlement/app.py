"""Settlement (SQS trigger on the settlement queue, fed by SNS trade-fills): each fill checked
against the ledger once, breaks to the alerts topic. Logic in bourse.consumers.settlement."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.consumers.settlement import Settlement
from bourse.lambda_gc import frozen_after_init
from bourse.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# Built once per container: the PostgreSQL connection and boto3 clients outlive invocations.
settlement = Settlement.from_settings(get_settings(), logger, metrics)


@frozen_after_init
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(settlement.handle(event))
