"""Redis clients configured from settings: the one way any code connects to Redis.

Redis requires an AUTH token everywhere: ElastiCache's on AWS (there the URL is ``rediss://``,
with TLS), the local stack's locally (devstack/redis_auth.py). The token lives in Secrets
Manager (``settings.redis_auth_secret_arn``): it is read once per process, never put in an
environment variable, so it shows up neither in the console nor in the template.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import redis

from bourse.adapters import aws
from bourse.settings import get_settings


@cache
def _auth_token(secret_arn: str) -> str:
    secret = aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    return str(json.loads(secret["SecretString"])["token"])


def connect(url: str, **kwargs: Any) -> redis.Redis:
    secret_arn = get_settings().redis_auth_secret_arn
    if secret_arn:
        kwargs.setdefault("password", _auth_token(secret_arn))
    client: redis.Redis = redis.Redis.from_url(url, **kwargs)
    return client
