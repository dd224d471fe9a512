from __future__ import annotations

import uuid

import pytest

from bourse.adapters import redis_conn
from bourse.settings import Settings

pytestmark = pytest.mark.integration


def test_redis_round_trip(local_stack: Settings) -> None:
    client = redis_conn.connect(local_stack.redis_url)
    key = f"test:{{stack}}:{uuid.uuid4().hex}"
    try:
        assert client.ping()
        client.set(key, b"value", px=60_000)
        assert client.get(key) == b"value"
        client.rpush(key + ":list", b"a", b"b")
        assert client.blpop([key + ":list"], timeout=1) == ((key + ":list").encode(), b"a")
    finally:
        client.delete(key, key + ":list")
        client.close()
