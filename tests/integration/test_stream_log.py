"""The stream log's scripts on a real Redis (bourse.adapters.stream_log): what the broadcaster
writes, and the rules of the hand-over from a replay to the live stream (docs/streams.md,
"Resumable streams")."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from bourse.adapters import redis_conn
from bourse.adapters.stream_log import HEAD, PENDING, LogGap, StreamLog
from bourse.settings import Settings

pytestmark = pytest.mark.integration

REDIS_DB = int(os.environ.get("BOURSE_TEST_STREAM_LOG_REDIS_DB", "58"))


@pytest.fixture
def client(local_stack: Settings) -> Iterator[Any]:
    url = local_stack.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    c = redis_conn.connect(url)
    c.flushdb()
    yield c
    c.flushdb()


def test_append_writes_a_batch_once_and_names_the_replaying(client: Any) -> None:
    log = StreamLog(client, maxlen=1000, pending_ttl_s=30)
    log.mark_replaying("r", (0, 0))
    log.begin_batch()
    entries = [(0, "s:a", b"x"), (1, "a:7", b"y"), (2, "s:a", b"z")]
    assert log.append(10, entries, ["r", "live"]) == {"r"}
    assert client.get(PENDING) is None and log.head() == (10, 2)
    # The same batch delivered again: nothing is written twice.
    assert log.append(10, [(0, "s:a", b"again")], []) == set()
    assert log.read_after(["s:a", "a:7"], (0, 0), 10) == [
        ((10, 0), "s:a", b"x"), ((10, 1), "a:7", b"y"), ((10, 2), "s:a", b"z"),
    ]  # fmt: skip
    assert log.read_after(["s:a"], (10, 0), 10) == [((10, 2), "s:a", b"z")]
    assert log.read_after(["s:a"], (10, 2**31 - 1), 10) == []
    assert log.append(11, [], []) == set() and log.head() == (10, 2)


def test_a_connection_goes_live_only_between_batches_and_when_caught_up(client: Any) -> None:
    log = StreamLog(client, maxlen=1000, pending_ttl_s=30)
    log.mark_replaying("r", (0, 0))
    log.append(5, [(0, "s:a", b"x")], [])
    assert not log.go_live("r", ["s:a"], (0, 0))  # the log holds more after the cursor
    log.begin_batch()
    assert not log.go_live("r", ["s:a"], (5, 0))  # a batch is pending
    assert log.append(6, [(0, "s:b", b"other")], ["r"]) == {"r"}
    assert log.go_live("r", ["s:a"], (5, 0))  # caught up on its own logs
    log.begin_batch()
    assert log.append(7, [(0, "s:a", b"y")], ["r"]) == set()  # live: the broadcaster sends


def test_a_cursor_older_than_the_log_is_a_gap(client: Any) -> None:
    log = StreamLog(client, maxlen=10, pending_ttl_s=30)
    for seq in range(1, 400):
        log.append(seq, [(0, "s:a", b"x")], [])
    assert client.xlen("wslog:{wslog}:s:a") < 399  # trimmed (MAXLEN ~: in whole nodes)
    with pytest.raises(LogGap):
        log.check(["s:a"], (1, 0))
    log.check(["s:a", "s:never"], (399, 0))
    assert client.get(HEAD) == b"399-0"
