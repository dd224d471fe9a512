"""API Gateway REQUEST authorizer: X-MBX-APIKEY -> the account (principal) and its
permissions (context). Logic in bourse.api.auth."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.adapters.live_api import authorizer_keys
from bourse.api.auth import Unauthorized, authorize
from bourse.lambda_gc import frozen_after_init

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@frozen_after_init
@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        answer = authorize(event, authorizer_keys())
    except Unauthorized:
        metrics.add_metric(name="AuthorizerUnauthorized", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(
        name="AuthorizerAllow" if "context" in answer else "AuthorizerDeny",
        unit=MetricUnit.Count,
        value=1,
    )
    return answer
