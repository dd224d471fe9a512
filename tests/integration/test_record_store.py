"""The record's PostgreSQL writer on real PostgreSQL, fed the engine's own events.

One database of this module's own (migrated from nothing); each test truncates the record.
The events come from an in-process engine run of the matching service's workload, so every
event type and order shape the engine emits is here.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from bourse.adapters.record_store import RecordStore
from bourse.domain.events import Event, ExecutionReport, Trade
from bourse.engine import Engine
from bourse.record.reconcile import differences
from bourse.settings import Settings
from tests.integration.record_support import (
    dump,
    engine_run,
    record_balances,
    scratch_database,
    truncate_record,
    unbalanced_trades,
)

pytestmark = pytest.mark.integration

COMMANDS = 3000


@pytest.fixture(scope="module")
def dsn(local_stack: Settings) -> Iterator[str]:
    with scratch_database(local_stack.pg_dsn, "test_record") as name:
        yield name


@pytest.fixture(scope="module")
def stream() -> tuple[list[Event], Engine]:
    return engine_run(COMMANDS)


@pytest.fixture()
def store(dsn: str) -> Iterator[RecordStore]:
    truncate_record(dsn)
    s = RecordStore(dsn, "test")
    yield s
    s.close()


def _batches(events: list[Event], size: int) -> list[list[Event]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


@pytest.fixture(scope="module")
def reference_dump(dsn: str, stream: tuple[list[Event], Engine]) -> dict[str, str]:
    truncate_record(dsn)
    s = RecordStore(dsn, "test")
    for batch in _batches(stream[0], 500):
        s.write(batch)
    s.close()
    return dump(dsn)


def test_whole_stream_matches_the_engine(
    store: RecordStore, dsn: str, stream: tuple[list[Event], Engine]
) -> None:
    events, engine = stream
    for batch in _batches(events, 700):
        store.write(batch)
    assert store.high_water_mark() == events[-1].seq
    assert differences(engine.balances(), record_balances(dsn)) == []
    assert unbalanced_trades(dsn) == []
    trades = [e for e in events if isinstance(e, Trade)]
    reports = [e for e in events if isinstance(e, ExecutionReport)]
    with psycopg.connect(dsn) as conn:

        def one(query: str) -> object:
            row = conn.execute(query.encode()).fetchone()
            assert row is not None
            return row[0]

        assert one("SELECT count(*) FROM trades") == len(trades)
        assert one("SELECT count(*) FROM order_events") == len(reports)
        assert one("SELECT count(*) FROM account_trades") == 2 * len(trades)
        assert one("SELECT count(*) FROM record_gaps") == 0
        # Every transaction of the ledger nets to zero per asset, not just trades.
        assert (
            one(
                "SELECT count(*) FROM (SELECT seq, asset FROM ledger_entries GROUP BY seq, asset"
                " HAVING sum(amount) <> 0) t"
            )
            == 0
        )
        # The projection equals the ledger: each account's holding is its entries' sum.
        assert (
            conn.execute(
                "SELECT l.account_id, l.asset FROM (SELECT account_id, asset, sum(amount) AS total"
                " FROM ledger_entries WHERE account_id >= 0 GROUP BY 1, 2) l"
                " LEFT JOIN balances b USING (account_id, asset)"
                " WHERE l.total <> coalesce(b.free + b.locked, 0)"
            ).fetchall()
            == []
        )
        # Klines and aggregate trades hold exactly the trades' volume, for every interval.
        volume = sum(t.qty for t in trades)
        for interval in ("1s", "1m", "1h", "1d", "1w", "1M"):
            row = conn.execute(
                "SELECT sum(volume), sum(trades) FROM klines WHERE interval = %s", (interval,)
            ).fetchone()
            assert row == (volume, len(trades)), interval
        assert one("SELECT sum(qty) FROM agg_trades") == volume
        # orders hold each order's final state
        last: dict[tuple[str, int], ExecutionReport] = {}
        for r in reports:
            last[(r.order.symbol, r.order.order_id)] = r
        assert one("SELECT count(*) FROM orders") == len(last)
        stored = {
            (s, o): (st, q)
            for s, o, st, q in conn.execute(
                "SELECT symbol, order_id, status, executed_qty FROM orders"
            ).fetchall()
        }
        assert stored == {k: (r.status.value, r.cum_qty) for k, r in last.items()}


def test_the_same_batch_twice_changes_nothing(
    store: RecordStore, dsn: str, stream: tuple[list[Event], Engine], reference_dump: dict[str, str]
) -> None:
    truncate_record(dsn)
    for batch in _batches(stream[0], 500):
        first = store.write(batch)
        again = store.write(batch)
        assert first.applied == len(batch)
        assert again.applied == 0
    assert dump(dsn) == reference_dump


def test_redelivery_cut_differently_changes_nothing(
    store: RecordStore, dsn: str, stream: tuple[list[Event], Engine], reference_dump: dict[str, str]
) -> None:
    events = stream[0]
    truncate_record(dsn)
    # Batches of 300 with every one re-sent overlapping the next, as a consumer that restarts
    # from an older offset with a different batch size would.
    for start in range(0, len(events), 300):
        store.write(events[start : start + 450])
        store.write(events[max(0, start - 100) : start + 200])
    assert dump(dsn) == reference_dump


def test_batches_without_their_recordless_events_as_whole_batches(
    store: RecordStore, dsn: str, stream: tuple[list[Event], Engine], reference_dump: dict[str, str]
) -> None:
    """The recorder's deliveries leave out the events the record keeps nothing of and hand
    their seqs instead (``bourse.record.delivery``), here re-delivered overlapping: the same
    tables as whole batches of 500, and no gap."""
    from bourse.record.delivery import RECORDLESS

    events = stream[0]
    truncate_record(dsn)
    for start in range(0, len(events), 1100):
        batch = events[start : start + 1400]
        recorded = [ev for ev in batch if type(ev).__name__ not in RECORDLESS]
        result = store.write(recorded, seqs=[ev.seq for ev in batch])
        assert result.gaps == []
    assert dump(dsn) == reference_dump
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM record_gaps").fetchone() == (0,)


def test_a_delivery_of_recordless_events_only_moves_the_mark(
    store: RecordStore, dsn: str, stream: tuple[list[Event], Engine]
) -> None:
    from bourse.record.delivery import RECORDLESS

    events = stream[0]
    cut = next(i for i in range(300, len(events)) if type(events[i]).__name__ in RECORDLESS)
    store.write(events[:cut])
    before = dump(dsn)
    result = store.write([], seqs=[events[cut].seq])
    assert (result.applied, result.last_seq, result.gaps) == (1, events[cut].seq, [])
    assert store.high_water_mark() == events[cut].seq
    assert {k: v for k, v in dump(dsn).items() if k != "applied_events"} == {
        k: v for k, v in before.items() if k != "applied_events"
    }


def test_a_failed_batch_leaves_nothing(
    store: RecordStore, dsn: str, stream: tuple[list[Event], Engine]
) -> None:
    events = stream[0]
    store.write(events[:400])
    before = dump(dsn)

    def fail(_: list[Event]) -> None:
        raise RuntimeError("archive unavailable")

    with pytest.raises(RuntimeError):
        store.write(events[400:900], before_commit=fail)
    assert dump(dsn) == before
    assert store.high_water_mark() == events[399].seq
    assert store.write(events[400:900]).applied == 500


def test_a_gap_is_recorded(
    store: RecordStore, dsn: str, stream: tuple[list[Event], Engine]
) -> None:
    events = stream[0]
    store.write(events[:100])
    result = store.write(events[110:200])
    assert result.gaps == [(events[100].seq, events[109].seq)]
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT from_seq, to_seq FROM record_gaps").fetchall() == [
            (events[100].seq, events[109].seq)
        ]


def test_rolling_ticker_equals_a_scan_of_the_trades(store: RecordStore, dsn: str) -> None:
    import dataclasses

    from bourse.adapters.record_reads import rolling_ticker
    from matching_service.workload import commands

    # The workload's commands are 1 ms apart; stretched to ~1 s apart, trades span the minutes
    # and ragged edges a rolling window has to stitch together.
    engine = Engine()
    events: list[Event] = []
    for i, cmd in enumerate(commands(2000, seed=9)):
        events.extend(engine.process(dataclasses.replace(cmd, ts=1_700_000_000_000 + i * 997)))
    store.write(events)
    trades = [e for e in events if isinstance(e, Trade)]
    symbol = trades[0].symbol
    mine = [t for t in trades if t.symbol == symbol]
    span = mine[-1].ts - mine[0].ts
    assert span > 120_000, "the workload must span minutes for this test to mean anything"
    with psycopg.connect(dsn) as conn:
        for now in (mine[len(mine) // 2].ts + 123, mine[-1].ts, mine[-1].ts + 5):
            for window in (61_000, 10 * 60_000, 86_400_000):
                got = rolling_ticker(conn, symbol, now, window)
                inside = [t for t in mine if now - window < t.ts <= now]
                assert got.count == len(inside), (now, window)
                assert got.volume == sum(t.qty for t in inside)
                assert got.quote_volume == sum(t.quote_qty for t in inside)
                assert got.open_price == inside[0].price
                assert got.last_price == inside[-1].price
                assert got.last_qty == inside[-1].qty
                assert got.high_price == max(t.price for t in inside)
                assert got.low_price == min(t.price for t in inside)
                assert (got.first_id, got.last_id) == (inside[0].trade_id, inside[-1].trade_id)
        empty = rolling_ticker(conn, symbol, mine[0].ts - 1, 1000)
        assert empty.count == 0 and empty.first_id == -1


def test_the_hot_cache_holds_the_newest_klines_and_tickers(
    dsn: str, store: RecordStore, local_stack: Settings, stream: tuple[list[Event], Engine]
) -> None:
    import os

    from aws_lambda_powertools import Logger, Metrics

    from bourse.adapters import redis_conn
    from bourse.adapters.hot_cache import HotCache
    from bourse.adapters.record_reads import rolling_ticker
    from bourse.consumers.recorder import Recorder

    db = int(os.environ.get("BOURSE_TEST_RECORD_REDIS_DB", "11"))
    client = redis_conn.connect(local_stack.redis_url.rsplit("/", 1)[0] + f"/{db}")
    client.flushdb()
    hot = HotCache(client)
    recorder = Recorder(store, None, None, Logger(), Metrics(namespace="Test"), hot)
    events = stream[0]
    for i in range(0, len(events), 900):
        recorder._record(events[i : i + 900])
    trades = [e for e in events if isinstance(e, Trade)]
    with psycopg.connect(dsn) as conn:
        for symbol in sorted({t.symbol for t in trades}):
            last = max((t for t in trades if t.symbol == symbol), key=lambda t: t.trade_id)
            for interval in ("1s", "1m", "1h", "1M"):
                row = conn.execute(
                    "SELECT open_time, close, volume, trades, last_trade_id FROM klines"
                    " WHERE symbol = %s AND interval = %s ORDER BY open_time DESC LIMIT 1",
                    (symbol, interval),
                ).fetchone()
                cached = hot.kline(symbol, interval)
                assert cached is not None
                assert row == (
                    cached["open_time"], cached["close"], cached["volume"], cached["trades"],
                    cached["last_trade_id"],
                )  # fmt: skip
                assert cached["last_trade_id"] == last.trade_id
            ticker = hot.ticker(symbol)
            assert ticker is not None
            expected = rolling_ticker(conn, symbol, last.ts)
            assert ticker["count"] == expected.count and ticker["last_id"] == last.trade_id
    client.flushdb()
