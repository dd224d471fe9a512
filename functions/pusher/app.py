"""Pusher (invoked by the broadcaster): one shard of a fan-out's connections, each sent its
frames through the @connections API (bourse.adapters.pusher_shards, docs/streams.md)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.adapters.pusher_shards import result_answer, shard_work
from bourse.adapters.ws_push import Pusher, connections_api
from bourse.lambda_gc import frozen_after_init
from bourse.settings import get_settings

logger = Logger()
metrics = Metrics()
_settings = get_settings()
# Built once per container: its kept-alive connections to the @connections endpoint serve
# every invocation after the first.
pusher = Pusher(connections_api(_settings, _settings.broadcaster_threads),
                _settings.broadcaster_threads)  # fmt: skip


@frozen_after_init
@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = pusher.post_all(shard_work(event))
    metrics.add_metric("MessagesPosted", MetricUnit.Count, result.sent)
    if result.failed:
        logger.warning("frames not delivered", extra={"failed": result.failed})
    return result_answer(result)
