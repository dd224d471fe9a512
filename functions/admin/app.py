"""The admin API (AWS_IAM): markets, accounts, API keys and funding, as signed admin commands.
Logic in bourse.admin; docs/admin-api.md."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.adapters.admin_bus import admin_deps
from bourse.admin.app import build
from bourse.lambda_gc import frozen_after_init

logger = Logger()
tracer = Tracer()
app = build(admin_deps)


@frozen_after_init
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
