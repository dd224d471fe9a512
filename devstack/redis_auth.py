"""The local Redis's AUTH token, as ElastiCache has one.

`up` generates it once and keeps it in the stack dir (mode 0600): Redis must know it when it
starts, before moto is up, and moto forgets its secrets at every restart while Redis keeps
running. From this file the token goes to two places only: Redis's ``requirepass`` and the
Secrets Manager secret that infra/data.yaml declares for it (``RedisAuthSecret``), from which
every client reads it (``bourse.adapters.redis_conn``), as on AWS.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from devstack.paths import StackPaths

# infra/data.yaml's RedisAuthSecret: the nested stack's resource the local Redis stands in for.
NESTED_STACK = "Data"
SECRET_LOGICAL_ID = "RedisAuthSecret"
SECRET_OUTPUT = "Outputs.RedisAuthSecretArn"


def token_path(paths: StackPaths) -> Path:
    return paths.root / "redis-auth-token"


def local_token(paths: StackPaths) -> str:
    """The stack's token, created on first use."""
    path = token_path(paths)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Alphanumeric, 64 characters: what ElastiCache accepts and data.yaml generates.
        token = secrets.token_hex(32)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token)
        tmp.replace(path)
    return path.read_text().strip()


def secret_string(token: str) -> str:
    """The secret's value in the shape data.yaml generates (``{"token": ...}``)."""
    return json.dumps({"token": token})
