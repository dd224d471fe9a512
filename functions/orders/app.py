"""Orders (SIGNED, TRADE): new, test, cancel, cancel all, cancel-replace. Logic in bourse.api."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.adapters.live_api import deps
from bourse.api.app import build
from bourse.api.routes import ORDERS
from bourse.lambda_gc import frozen_after_init

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = build(ORDERS, deps)


@frozen_after_init
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
