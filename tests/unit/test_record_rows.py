"""The record's pure mapping: events -> rows, kline buckets, reconciliation differences."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest

from bourse.domain.events import Event, ExecutionReport, FundingUpdate, Trade
from bourse.engine import Engine
from bourse.record.intervals import INTERVALS, bucket
from bourse.record.reconcile import differences
from bourse.record.rows import EXTERNAL_ACCOUNT, FEE_ACCOUNT, LEDGER_FUNDING, map_events
from matching_service.workload import commands as workload

pytestmark = pytest.mark.unit


def _ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    return int(moment.timestamp()) * 1000


def _events(count: int = 1500) -> list[Event]:
    engine = Engine()
    out: list[Event] = []
    for cmd in workload(count, seed=3):
        out.extend(engine.process(cmd))
    return out


def test_binance_intervals() -> None:
    assert INTERVALS == (
        "1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h",
        "1d", "3d", "1w", "1M",
    )  # fmt: skip
    ts = _ms(2024, 2, 29, 13, 47, 5) + 123
    assert bucket("1s", ts) == (ts - 123, ts - 123 + 999)
    assert bucket("15m", ts) == (_ms(2024, 2, 29, 13, 45), _ms(2024, 2, 29, 14) - 1)
    assert bucket("4h", ts) == (_ms(2024, 2, 29, 12), _ms(2024, 2, 29, 16) - 1)
    assert bucket("1d", ts) == (_ms(2024, 2, 29), _ms(2024, 3, 1) - 1)
    # Weeks open on Mondays; 2024-02-26 is a Monday.
    assert bucket("1w", ts) == (_ms(2024, 2, 26), _ms(2024, 3, 4) - 1)
    assert bucket("1M", ts) == (_ms(2024, 2, 1), _ms(2024, 3, 1) - 1)
    assert bucket("1M", _ms(2023, 12, 31, 23, 59)) == (_ms(2023, 12, 1), _ms(2024, 1, 1) - 1)
    # 3d buckets are multiples of three days since the epoch.
    open_3d, close_3d = bucket("3d", ts)
    assert open_3d % (3 * 86_400_000) == 0 and open_3d <= ts <= close_3d


def test_every_ledger_transaction_balances_and_matches_the_events() -> None:
    events = _events()
    rows = map_events(events, {})
    per_txn: dict[tuple[int, str], int] = defaultdict(int)
    for seq, _leg, _kind, _acct, asset, amount, *_ in rows.ledger:
        per_txn[(int(str(seq)), str(asset))] += int(str(amount))
    assert all(v == 0 for v in per_txn.values())
    trades = [e for e in events if isinstance(e, Trade)]
    fills = [e for e in events if isinstance(e, ExecutionReport) and e.trade_id >= 0]
    # Money crosses the edge when a deposit is credited and when a withdrawal completes.
    crossings = [
        e for e in events if isinstance(e, FundingUpdate) and (e.kind, e.status) in LEDGER_FUNDING
    ]
    assert crossings
    assert len(rows.trades) == len(trades)
    assert len(rows.account_trades) == len(fills) == 2 * len(trades)
    fee_legs = sum(1 for r in rows.ledger if r[2] == "FEE")
    assert fee_legs == 2 * sum(1 for f in fills if f.commission > 0)
    assert sum(1 for r in rows.ledger if r[2] in ("DEPOSIT", "WITHDRAWAL")) == 2 * len(crossings)
    assert all(r[3] == EXTERNAL_ACCOUNT for r in rows.ledger if r[2] == "DEPOSIT" and r[1] == 0)
    income = {a: v[0] for a, v in rows.fee_income.items()}
    expected: dict[str, int] = defaultdict(int)
    for f in fills:
        if f.commission:
            expected[f.commission_asset] += f.commission
    assert income == expected
    assert all(r[3] == FEE_ACCOUNT for r in rows.ledger if r[2] == "FEE" and r[1] == 1)
    assert rows.first_seq == 1 and rows.last_seq == events[-1].seq and rows.gaps == []


def test_klines_and_aggregate_trades_cover_every_trade_once() -> None:
    events = _events()
    rows = map_events(events, {})
    trades = [e for e in events if isinstance(e, Trade)]
    for interval in INTERVALS:
        ks = [k for k in rows.klines.values() if k.interval == interval]
        assert sum(k.volume for k in ks) == sum(t.qty for t in trades), interval
        assert sum(k.trades for k in ks) == len(trades)
        for k in ks:
            assert k.low <= min(k.open, k.close) and k.high >= max(k.open, k.close)
    assert sum(a.qty for a in rows.agg_trades) == sum(t.qty for t in trades)
    by_symbol: dict[str, list[int]] = defaultdict(list)
    for a in rows.agg_trades:
        by_symbol[a.symbol].append(a.agg_id)
    assert all(ids == sorted(ids) for ids in by_symbol.values())


def test_gaps_and_order() -> None:
    events = _events(300)
    rows = map_events(events[10:20] + events[25:30], {}, start_after=events[5].seq)
    assert rows.gaps == [(events[6].seq, events[9].seq), (events[20].seq, events[24].seq)]
    with pytest.raises(ValueError, match="out of order"):
        map_events([events[3], events[2]], {})


def test_differences() -> None:
    engine = {1: {"BTC": (5, 1)}, 2: {"USDT": (7, 0)}}
    record = {1: {"BTC": (5, 1)}, 3: {"ETH": (1, 0)}}
    diffs = differences(engine, record)
    assert [(d.account_id, d.asset) for d in diffs] == [(2, "USDT"), (3, "ETH")]
    assert "engine free=7" in str(diffs[0])


def test_minute_span() -> None:
    from bourse.record.tickers import minute_span

    assert minute_span(60_000, 179_999) == (60_000, 180_000)
    assert minute_span(60_001, 180_005) == (120_000, 180_000)
    assert minute_span(60_001, 61_000) == (61_001, 61_001)  # no whole minute inside
    assert minute_span(59_000, 119_998) == (119_999, 119_999)  # 60_000.. is not whole inside


def test_archive_key_and_body() -> None:
    import gzip

    from bourse.adapters.archive import archive_body, archive_key
    from bourse.domain.event_codec import decode_event

    events = _events(50)[3:40]
    key = archive_key("events/", events)
    hour = dt.datetime.fromtimestamp(events[0].ts // 1000, tz=dt.UTC)
    assert key == (f"events/{hour:%Y/%m/%d/%H}/{events[0].seq:020d}-{events[-1].seq:020d}.jsonl.gz")
    lines = gzip.decompress(archive_body(events)).splitlines()
    assert [decode_event(line) for line in lines] == events


def test_settlement_checks() -> None:
    from bourse.adapters.notify import fill_message
    from bourse.record.rows import Fill
    from bourse.record.settlement import check_fill, fill_from_message, statement_lines

    fill = Fill(9, 1, "BTCUSDT", 4, 7, 2, "BUY", False, 30, 100, 3000, 1, "BTC")
    legs = [
        ("TRADE", 5, "BTC", -100), ("TRADE", 2, "BTC", 100), ("TRADE", 2, "USDT", -3000),
        ("TRADE", 5, "USDT", 3000), ("FEE", 2, "BTC", -1), ("FEE", 0, "BTC", 1),
    ]  # fmt: skip
    recorded = (30, 100, 3000, 1, "BTC")
    assert check_fill(fill, "BTC", "USDT", legs, recorded) == []
    broken = [*legs[:-1], ("FEE", 0, "BTC", 2)]
    problems = check_fill(fill, "BTC", "USDT", broken, recorded)
    assert "ledger does not balance in BTC: +1" in problems
    assert any(p.startswith("missing ledger leg FEE account 0") for p in problems)
    assert check_fill(fill, "BTC", "USDT", [], recorded) == ["no ledger entries for the trade"]
    assert check_fill(fill, "BTC", "USDT", legs, None) == ["fill not in account_trades"]
    assert sorted(statement_lines(fill, "BTC", "USDT")) == [
        ("BTC", 100, 0, 1), ("USDT", 0, 3000, 0),
    ]  # fmt: skip
    with pytest.raises(ValueError, match="misses ts, symbol"):
        fill_from_message({"seq": 1})
    # The message the recorder publishes reads back as the same fill.
    assert fill_from_message(fill_message(fill)) == fill
    with pytest.raises(ValueError, match="qty must be an integer"):
        fill_from_message({**fill_message(fill), "qty": "100"})
