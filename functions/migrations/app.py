"""Custom resource (deploy time): apply the record's pending migrations to Aurora (through RDS
Proxy, or at the writer in a profile without one). Logic in bourse.adapters.migrations: it
waits for the record (connecting again with backoff until the deadline) and bounds every
statement; without RDS Proxy it first lets the app's role log in with IAM tokens
(``GRANT rds_iam``, once, with the master secret in BOURSE_PG_MASTER_SECRET_ARN). The protocol
(one answer on every path, before the function's timeout) is bourse.deploy.custom_resource's."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.adapters import aws
from bourse.adapters.migrations import apply_migrations, discover, grant_iam_auth
from bourse.deploy import custom_resource
from bourse.settings import get_settings

logger = Logger()

PHYSICAL_ID = "bourse-migrations"
# Set only in a profile without RDS Proxy (template.yaml, GrantsIamAuth).
MASTER_SECRET_ENV = "BOURSE_PG_MASTER_SECRET_ARN"


def _master_password(secret_arn: str) -> str:
    secret = aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    return str(json.loads(secret["SecretString"])["password"])


def _migrate(_properties: Mapping[str, Any], deadline: float) -> dict[str, str]:
    dsn = get_settings().pg_dsn
    secret_arn = os.environ.get(MASTER_SECRET_ENV, "")
    # An ARN or nothing (AWS drops a variable set to AWS::NoValue; the local invoker, for now,
    # passes a placeholder instead).
    granted = secret_arn.startswith("arn:") and grant_iam_auth(
        dsn, _master_password(secret_arn), deadline
    )
    if granted:
        logger.info("granted rds_iam: the app's role now logs in with IAM tokens")
    applied = apply_migrations(dsn, deadline=deadline)
    logger.info("migrations applied", extra={"migrations_applied": [m.label for m in applied]})
    return {
        "Applied": ",".join(m.label for m in applied),
        "SchemaVersion": str(max((m.version for m in discover()), default=0)),
    }


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return custom_resource.run(event, context, PHYSICAL_ID, _migrate)
