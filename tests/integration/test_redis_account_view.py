"""The matching service's account and symbol view in Redis (balances, open orders, fees,
symbols, account statuses), written batch by batch, equals the engine's own state; a rebuild
writes the same.

Runs the pure pipeline and the real RedisView against the stack's Redis, in a database of its
own (flushed here), without Kafka: the service's loop adds nothing to what is written.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import redis

from bourse.adapters import recent_view, redis_conn
from bourse.adapters.redis_book import (
    ACCOUNTS_KEY,
    SYMBOLS_KEY,
    read_account_status,
    read_accounts,
    read_balances,
    read_fees,
    read_open_orders,
    read_symbols,
)
from bourse.domain.admin_auth import LocalAdminSigner, encode_record
from bourse.domain.commands import SetAccountFees, SetAccountStatus, UpdateSymbol
from bourse.domain.markets import DEFAULT_MARKETS
from bourse.engine import Engine
from bourse.settings import Settings
from matching_service.pipeline import run_batch
from matching_service.redis_view import HashOps, RedisView
from matching_service.workload import commands as workload

pytestmark = pytest.mark.integration

REDIS_DB = int(os.environ.get("BOURSE_TEST_VIEW_REDIS_DB", "14"))
SIGNER = LocalAdminSigner()


@pytest.fixture
def client(local_stack: Settings) -> Iterator[redis.Redis]:
    url = local_stack.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    c = redis_conn.connect(url)
    c.flushdb()
    yield c
    c.flushdb()


def _open(results: list[Any]) -> list[Any]:
    return [(r.order, r.status, r.executed_qty, r.cum_quote, r.working_ts) for r in results]


def _assert_view_equals_engine(client: redis.Redis, engine: Engine) -> None:
    assert read_symbols(client) == dict(sorted(engine.symbols().items()))
    assert read_accounts(client) == engine.accounts()
    for account, (maker, taker) in engine.account_fees().items():
        assert read_fees(client, account) == (maker, taker)
    balances = engine.balances()
    for account in range(1, 25):
        assert read_balances(client, account) == dict(sorted(balances.get(account, {}).items()))
        expected = sorted(
            engine.open_orders(account), key=lambda r: (r.order.symbol, r.order.order_id)
        )
        assert _open(read_open_orders(client, account)) == _open(expected), account


def test_batches_then_rebuild(client: redis.Redis) -> None:
    engine = Engine()
    view = RedisView(client, "test.view.commands", reply_ttl_s=60)
    cmds = list(workload(3000, seed=7, accounts=20))
    ts = cmds[-1].ts
    cheaper = replace(DEFAULT_MARKETS[0], maker_commission=0, taker_commission=20_000)
    cmds += [
        SetAccountFees("fees-1", ts, 3, 50_000, 70_000),
        SetAccountStatus("freeze-5", ts, 5, True),
        UpdateSymbol("commissions-1", ts, cheaper),
    ]
    records = [(i, encode_record(c, SIGNER)) for i, c in enumerate(cmds)]
    opened = 0
    for start in range(0, len(records), 250):
        out = run_batch(engine, records[start : start + 250], verifier=SIGNER.verifier())
        ops = HashOps.from_events(
            out.orders, out.balances, out.symbols, out.fees, accounts=out.accounts
        )
        opened += sum(1 for _, name, _ in ops.hset if ":" in name)
        values = view.book_values(engine, out.depth_symbols, out.next_offset)
        assert view.apply(out.next_offset, values=values, replies=out.replies, ops=ops)
    assert opened > 0, "the workload left no open order to compare"
    assert any(read_open_orders(client, a) for a in range(1, 21))
    _assert_view_equals_engine(client, engine)
    assert read_fees(client, 3) == (50_000, 70_000)
    assert read_fees(client, 4) is None
    assert read_account_status(client, 5) == "FROZEN" and read_account_status(client, 4) == "ACTIVE"
    assert read_account_status(client, 999) is None
    assert len(read_accounts(client)) == 20
    spec = read_symbols(client)[cheaper.symbol]
    assert (spec.maker_commission, spec.taker_commission) == (0, 20_000)

    # A rebuild from the engine writes the same view over a polluted one.
    client.hset(SYMBOLS_KEY, "JUNK", b"{}")
    client.hset("account:{1}:orders", "BTCUSDT:999999", b"{}")
    client.hset(ACCOUNTS_KEY, "777", b"FROZEN")
    client.delete("account:{3}:fees")
    assert view.rebuild(engine, len(records) + 1)
    _assert_view_equals_engine(client, engine)
    # An older write is ignored (a fenced instance cannot roll the view back).
    assert not view.apply(5, values=[], ops=HashOps(deletes=[SYMBOLS_KEY]))
    assert read_symbols(client)


def test_rebuild_on_empty_redis(client: redis.Redis) -> None:
    engine = Engine()
    for i, cmd in enumerate(itertools.islice(workload(800, seed=3, accounts=5), 800)):
        engine.process(cmd)
        last = i
    view = RedisView(client, "test.view.rebuild", reply_ttl_s=60)
    assert view.rebuild(engine, last + 1)
    _assert_view_equals_engine(client, engine)


def test_caps_and_ttls_hold_within_one_batch(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script applies the caps once per key after a batch's inserts: the same newest
    entries as capping after each one, every key expiring."""
    monkeypatch.setattr(recent_view, "CLOSED_CAP", 3)
    monkeypatch.setattr(recent_view, "FILLS_CAP", 2)
    view = RedisView(client, "test.view.caps", reply_ttl_s=60)
    ops = HashOps(
        closed=[(1, f"BTCUSDT:{i}", 100 + i, f'{{"n":{i}}}'.encode()) for i in range(6)]
        + [(2, "BTCUSDT:9", 200, b'{"n":9}')],
        fills=[(1, f'{{"f":{i}}}'.encode()) for i in range(5)],
    )
    assert view.apply(1, values=[], ops=ops)
    assert sorted(client.hkeys(recent_view.closed_key(1))) == [b"BTCUSDT:3", b"BTCUSDT:4",
                                                                b"BTCUSDT:5"]  # fmt: skip
    assert client.zrange(recent_view.closed_index_key(1), 0, -1) == [b"BTCUSDT:3", b"BTCUSDT:4",
                                                                      b"BTCUSDT:5"]  # fmt: skip
    assert client.hkeys(recent_view.closed_key(2)) == [b"BTCUSDT:9"]
    assert client.lrange(recent_view.fills_key(1), 0, -1) == [b'{"f":3}', b'{"f":4}']
    for key in (recent_view.closed_key(1), recent_view.closed_index_key(1),
                recent_view.closed_key(2), recent_view.fills_key(1)):  # fmt: skip
        assert 0 < client.ttl(key) <= recent_view.RECENT_TTL_S
    # A later batch trims what the earlier left: the cap is per key, not per batch.
    assert view.apply(2, values=[], ops=HashOps(closed=[(1, "BTCUSDT:7", 300, b"{}")]))
    assert sorted(client.hkeys(recent_view.closed_key(1))) == [b"BTCUSDT:4", b"BTCUSDT:5",
                                                                b"BTCUSDT:7"]  # fmt: skip
