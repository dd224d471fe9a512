"""The recorder's rows for an amendment (order_amendments, migration 0007), from real engine
events, and the REPLACED executionReport on the user data stream."""

from __future__ import annotations

from typing import Any

import pytest

from bourse.domain.commands import AmendOrder
from bourse.domain.events import ExecutionReport, OrderAmended
from bourse.record.rows import AMENDMENT_COLUMNS, map_events
from bourse.streams.payloads import execution_report
from tests.unit.test_engine_helpers import LOT, SYMBOL, Bench, of

pytestmark = pytest.mark.unit


def _amended() -> list[Any]:
    b = Bench()
    b.order(1, "BUY", 10, 100, cid="orig")
    b.ts += 1
    return b.run(AmendOrder("a1", b.ts, 1, SYMBOL, 4 * LOT, "renamed", 1))


def test_one_row_per_amendment_keyed_by_the_replaced_report() -> None:
    events = _amended()
    report = of(events, ExecutionReport)[0]
    record = of(events, OrderAmended)[0]
    rows = map_events(events, {SYMBOL: ("BTC", "USDT")}, start_after=events[0].seq - 1)
    (row,) = rows.amendments
    assert dict(zip(AMENDMENT_COLUMNS, row, strict=True)) == {
        "symbol": SYMBOL,
        "order_id": 1,
        "execution_id": report.seq,
        "account_id": 1,
        "orig_client_order_id": "orig",
        "new_client_order_id": "renamed",
        "orig_qty": 10 * LOT,
        "new_qty": 4 * LOT,
        "ts": record.ts,
        "seq": record.seq,
    }
    # the orders row takes the amended quantity and client id from the REPLACED report
    order_row = rows.orders[(SYMBOL, 1)]
    assert order_row[3] == "renamed" and order_row[7] == 4 * LOT


def test_user_data_stream_shows_replaced_with_the_old_client_id() -> None:
    report = of(_amended(), ExecutionReport)[0]
    body = execution_report(report)
    assert (body["x"], body["X"], body["c"], body["C"]) == ("REPLACED", "NEW", "renamed", "orig")
    assert body["q"] == "0.04000000" and body["I"] == report.seq
