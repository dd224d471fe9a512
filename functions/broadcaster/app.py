"""Broadcaster (MSK trigger on bourse.events): Binance market and user data streams to the
WebSocket connections. Logic in bourse.consumers.broadcaster."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.consumers.broadcaster import Broadcaster
from bourse.lambda_gc import frozen_after_init
from bourse.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# Built once per container: the stream state (books, klines, 24 h windows) lives as long as
# the container and is seeded from Redis for each symbol it meets first.
broadcaster = Broadcaster.from_settings(get_settings(), logger, metrics)


@frozen_after_init
@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dict(broadcaster.handle(event))
