"""Custom resource (deploy time): apply the record's pending migrations to Aurora through RDS
Proxy. Logic in bourse.adapters.migrations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.adapters.migrations import apply_migrations, discover
from bourse.deploy import custom_resource
from bourse.settings import get_settings

logger = Logger()


def _migrate(_properties: Mapping[str, Any]) -> dict[str, str]:
    applied = apply_migrations(get_settings().pg_dsn)
    logger.info("migrations applied", extra={"migrations_applied": [m.label for m in applied]})
    return {
        "Applied": ",".join(m.label for m in applied),
        "SchemaVersion": str(max((m.version for m in discover()), default=0)),
    }


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return custom_resource.run(event, context.log_stream_name, "bourse-migrations", _migrate)
