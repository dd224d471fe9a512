"""A trailing stop's trailingDelta and trailingTime reach the record's ``orders`` row, and
allOrders / GET /api/v3/order answer them from the record as the live view does."""

from __future__ import annotations

import dataclasses

import pytest

from bourse.api.record_shapes import order as order_shape
from bourse.domain.enums import OrderType
from bourse.domain.events import Event
from bourse.record.rows import ORDER_COLUMNS, map_events
from bourse.record.views import OrderRow
from tests.unit.test_engine_helpers import Bench
from tests.unit.test_engine_trailing import place, walk

pytestmark = pytest.mark.unit


def _row(rows: dict[tuple[str, int], tuple[object, ...]], order_id: int) -> dict[str, object]:
    return dict(zip(ORDER_COLUMNS, rows[("BTCUSDT", order_id)], strict=True))


def test_trailing_fields_reach_the_order_row() -> None:
    b = Bench()
    walk(b, 40_000)
    oid = place(b, "SELL", OrderType.STOP_LOSS_LIMIT, 38_000, 1000)  # tracks from 40,000 at once
    recorded = walk(b, 41_000, 36_000)  # 36,000 is more than 10% below 41,000: triggered
    events = [e for e in recorded if isinstance(e, Event)]
    rows = map_events(events, {"BTCUSDT": ("BTC", "USDT")}, events[0].seq - 1).orders
    row = _row(rows, oid)
    assert row["trailing_delta"] == 1000
    assert isinstance(row["trailing_time"], int) and row["trailing_time"] >= 0
    assert row["type"] == "STOP_LOSS_LIMIT"
    # An order that is no trailing stop: the defaults, as the migration fills old rows.
    maker = next(k for k in rows if k[1] != oid)
    assert _row(rows, maker[1])["trailing_delta"] == 0
    assert _row(rows, maker[1])["trailing_time"] == -1


def _order_row(**changes: object) -> OrderRow:
    base = OrderRow(
        symbol="BTCUSDT", order_id=7, client_order_id="c", side="SELL", type="STOP_LOSS_LIMIT",
        time_in_force="GTC", quantity=10**8, price=38_000 * 10**8, stop_price=0, iceberg_qty=0,
        quote_order_qty=0, stp_mode="EXPIRE_MAKER", status="FILLED", executed_qty=10**8,
        cum_quote=38_000 * 10**8, is_working=True, working_ts=5, created_ts=1, update_ts=5,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_the_record_shows_trailing_fields_on_trailing_stops_only() -> None:
    shown = order_shape(_order_row(trailing_delta=1000, trailing_time=3))
    assert (shown["trailingDelta"], shown["trailingTime"]) == (1000, 3)
    plain = order_shape(_order_row())
    assert "trailingDelta" not in plain and "trailingTime" not in plain
