"""Lambda's Invoke API from a function (locally the gateway serves it for the template's
functions): the broadcaster's pusher shards, $connect's stream resumes."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from bourse.settings import Settings


def lambda_client(settings: Settings, shards: int) -> Any:
    """Lambda's Invoke API (locally the gateway's), one pooled connection per parallel shard,
    one attempt: a retried Invoke would post its frames twice."""
    options: dict[str, Any] = {
        "region_name": settings.region,
        "config": Config(
            retries={"mode": "standard", "max_attempts": 1},
            connect_timeout=2,
            read_timeout=30,
            max_pool_connections=shards,
        ),
    }
    if settings.aws_credentials is not None:  # the local stack: its gateway serves Invoke
        options["endpoint_url"] = settings.gateway_url
        options["aws_access_key_id"], options["aws_secret_access_key"] = settings.aws_credentials
    return boto3.client("lambda", **options)
