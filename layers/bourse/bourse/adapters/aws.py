"""boto3 clients and resources configured from settings (moto server locally, AWS otherwise).

Clients are cached per service: creating a boto3 client costs tens of milliseconds, which a
Lambda should pay once per container, not per request.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from bourse.settings import get_settings

_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10
)


def _options() -> dict[str, Any]:
    settings = get_settings()
    options: dict[str, Any] = {
        "region_name": settings.region,
        "endpoint_url": settings.aws_endpoint_url,
        "config": _CONFIG,
    }
    if settings.aws_credentials is not None:
        options["aws_access_key_id"], options["aws_secret_access_key"] = settings.aws_credentials
    return options


@cache
def client(service: str) -> Any:
    return boto3.client(service, **_options())  # type: ignore[call-overload]


# For calls on every API request's path (the rate limiter): one attempt and short timeouts,
# so that an unreachable service costs a request well under a second before it fails open.
_FAST_CONFIG = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=0.5,
                      read_timeout=1)  # fmt: skip


@cache
def fast_client(service: str) -> Any:
    return boto3.client(service, **{**_options(), "config": _FAST_CONFIG})  # type: ignore[call-overload]


@cache
def resource(service: str) -> Any:
    return boto3.resource(service, **_options())  # type: ignore[call-overload]
