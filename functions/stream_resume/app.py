"""Stream resume (invoked asynchronously by $connect with ``resumeFrom``): replays a
connection's messages from the stream log, then hands it to the broadcaster
(bourse.ws.resume, docs/streams.md "Resumable streams")."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.adapters.stream_replay import replay_from_event
from bourse.lambda_gc import frozen_after_init
from bourse.settings import get_settings

logger = Logger()
metrics = Metrics()


@frozen_after_init
@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    outcome = replay_from_event(get_settings(), event)
    metrics.add_metric("MessagesReplayed", MetricUnit.Count, outcome.sent)
    logger.info(
        "resume ended",
        extra={"connectionId": event.get("connectionId"), "status": outcome.status,
               "sent": outcome.sent, "cursor": list(outcome.cursor)},
    )  # fmt: skip
    return {"status": outcome.status, "sent": outcome.sent}
