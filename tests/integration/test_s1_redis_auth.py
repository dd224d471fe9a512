"""The local Redis is as strict as ElastiCache: it refuses a client without the AUTH token, and
the one connection factory (bourse.adapters.redis_conn) gets the token from the Secrets
Manager secret that infra/data.yaml declares, which the local stack creates in moto."""

from __future__ import annotations

import dataclasses
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bourse.adapters import redis_conn
from bourse.settings import Settings
from devstack.paths import StackPaths
from devstack.redis import Redis as RedisService
from devstack.redis_auth import token_path

pytestmark = pytest.mark.integration


def test_a_client_without_the_token_is_refused(local_stack: Settings) -> None:
    raw = redis.Redis.from_url(local_stack.redis_url, socket_timeout=5)
    try:
        # NOAUTH, or with RESP3 (redis-py's default) HELLO's "must be ... authenticated".
        with pytest.raises(redis.AuthenticationError, match=r"NOAUTH|authenticated"):
            raw.ping()
    finally:
        raw.close()


def test_a_wrong_token_is_refused(local_stack: Settings) -> None:
    wrong = redis.Redis.from_url(local_stack.redis_url, password="not-the-token", socket_timeout=5)
    try:
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
    finally:
        wrong.close()


def test_the_factory_reads_the_token_from_the_secret(local_stack: Settings) -> None:
    client = redis_conn.connect(local_stack.redis_url, socket_timeout=5)
    try:
        assert client.ping()
    finally:
        client.close()


def test_the_secret_is_the_one_data_yaml_declares(
    local_stack: Settings, aws_client: Callable[[str], Any]
) -> None:
    secret = aws_client("secretsmanager").get_secret_value(SecretId="bourse-local/redis-auth")
    token = json.loads(secret["SecretString"])["token"]
    assert token == token_path(StackPaths.from_settings(local_stack)).read_text().strip()
    assert local_stack.redis_auth_secret_arn == "bourse-local/redis-auth"


@pytest.fixture
def unprotected_redis(local_stack: Settings, tmp_path: Path) -> Iterator[Settings]:
    """A redis-server as the stack started it before Redis had a password."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    settings = dataclasses.replace(
        local_stack, redis_url=f"redis://127.0.0.1:{port}/0", stack_dir=str(tmp_path)
    )
    try:
        yield settings
    finally:
        proc.terminate()
        proc.wait()


def test_up_protects_a_redis_started_without_the_token(unprotected_redis: Settings) -> None:
    service = RedisService(unprotected_redis, StackPaths.from_settings(unprotected_redis))
    for _ in range(100):  # until it listens: ping() is the stack's own readiness check
        try:
            service.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    assert service.configure() != []
    raw = redis.Redis.from_url(unprotected_redis.redis_url, socket_timeout=5)
    try:
        with pytest.raises(redis.AuthenticationError):
            raw.ping()
    finally:
        raw.close()
    service.ping()  # with the token: still ready
    assert service.configure() == []  # protected now: nothing more to do
