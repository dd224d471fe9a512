"""The WebSocket API: order.place, account.status, ... (the REST handlers), session.logon and
user data subscriptions. Logic in bourse.ws.api."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.adapters import connections
from bourse.adapters.live_api import deps
from bourse.adapters.stream_resumes import resumes
from bourse.lambda_gc import frozen_after_init
from bourse.settings import get_settings
from bourse.ws.api import handle
from bourse.ws.events import read_event

logger = Logger()
tracer = Tracer()
metrics = Metrics()
_resumes = resumes(get_settings())


@frozen_after_init
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(read_event(event), deps(), connections.store(), _resumes)
