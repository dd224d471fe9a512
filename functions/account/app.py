"""Account reads (SIGNED, USER_DATA): account, commission, order, openOrders, and allOrders
and myTrades from the record.

Logic in bourse.api. Reads only: it sends no command (live_api.account_deps has no producer)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.adapters.live_api import account_deps
from bourse.api.app import build
from bourse.api.routes import ACCOUNT
from bourse.lambda_gc import frozen_after_init

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = build(ACCOUNT, account_deps)


@frozen_after_init
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
