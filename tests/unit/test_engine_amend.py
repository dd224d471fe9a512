"""AMEND_ORDER: order amend keep priority (Binance's faqs/order_amend_keep_priority.md).

Only the quantity shrinks; the order keeps its id and its place in its level's queue; the
errors are Binance's -2038 messages (errors.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.domain.commands import AmendOrder, SetSymbolStatus
from bourse.domain.enums import SymbolStatus
from bourse.domain.events import (
    DepthUpdate,
    ExecutionReport,
    OrderAmended,
    Reply,
)
from bourse.engine import Engine
from tests.unit.test_engine_helpers import (
    E8,
    LOT,
    SYMBOL,
    Bench,
    first_result,
    of,
    reply,
    reports,
    trades,
)

pytestmark = pytest.mark.unit


def amend(
    b: Bench, acct: int, new_lots: int, order_id: int | None = None, **kw: object
) -> list[Any]:
    b.ts += 1
    cid = kw.pop("new_client_order_id", f"am{b.ts}")
    return b.run(
        AmendOrder(f"a{b.ts}", b.ts, acct, SYMBOL, new_lots * LOT, str(cid), order_id, **kw)  # type: ignore[arg-type]
    )


def test_amend_keeps_queue_priority() -> None:
    # faqs/order_amend_keep_priority.md: A 1.00, YOU 5.50, B 4.00 at one price; YOU -> 5.00.
    b = Bench()
    b.order(2, "BUY", 100, 87)  # user A, order 1
    b.order(1, "BUY", 550, 87)  # you, order 2
    b.order(3, "BUY", 400, 87)  # user B, order 3
    events = amend(b, 1, 500, 2)
    assert reports(events) == [(2, "REPLACED", "NEW")]
    assert of(events, DepthUpdate)[0].bids == ((87 * E8, 1000 * LOT),)
    # a seller of 6.00 meets A (1.00), then you (5.00) — B is still behind you
    events = b.order(4, "SELL", 600, 87)
    assert [e.order.order_id for e in of(events, ExecutionReport) if e.is_maker] == [1, 2]
    assert trades(events) == [(87, 100), (87, 500)]


def test_replaced_report_and_amendment_record() -> None:
    b = Bench()
    b.order(1, "SELL", 10, 100, cid="orig")
    events = amend(b, 1, 4, 1, new_client_order_id="renamed")
    report = of(events, ExecutionReport)[0]
    assert (report.order.quantity, report.order.client_order_id) == (4 * LOT, "renamed")
    assert report.cancel_client_order_id == "orig"  # "C" on the user data stream
    record = of(events, OrderAmended)[0]
    assert record.execution_id == report.seq
    assert (record.orig_client_order_id, record.new_client_order_id) == ("orig", "renamed")
    assert (record.orig_qty, record.new_qty) == (10 * LOT, 4 * LOT)
    done = reply(events)
    assert json.loads(done.detail) == {
        "executionId": report.seq,
        "origClientOrderId": "orig",
        "preventedQty": 0,
    }
    assert first_result(events).order.quantity == 4 * LOT
    assert b.locked(1, "BTC") == 4 * LOT  # 0.06 BTC released
    # found by its new client id afterwards, not by the old one
    assert amend(b, 1, 3, None, orig_client_order_id="renamed")[-1].code == 0
    assert amend(b, 1, 2, None, orig_client_order_id="orig")[-1].code == -2038


def test_buy_amend_releases_quote_and_partial_fill_counts() -> None:
    b = Bench()
    b.order(1, "BUY", 10, 100)
    b.order(2, "SELL", 3, 100)  # 3 of 10 filled
    events = amend(b, 1, 5, 1)
    assert reports(events) == [(1, "REPLACED", "PARTIALLY_FILLED")]
    assert b.locked(1, "USDT") == 2 * E8  # 0.02 left at 100
    # amended to what it already traded: nothing left, it expires
    events = amend(b, 1, 3, 1)
    assert reports(events) == [(1, "REPLACED", "EXPIRED")]
    assert b.locked(1, "USDT") == 0 and b.engine.open_orders(1, SYMBOL) == []


def test_iceberg_display_changes_only_below_it() -> None:
    b = Bench()
    b.order(1, "SELL", 10, 100, iceberg_qty=4 * LOT)
    events = amend(b, 1, 6, 1)
    assert of(events, DepthUpdate) == []  # 4 still shown
    events = amend(b, 1, 3, 1)
    assert of(events, DepthUpdate)[0].asks == ((100 * E8, 3 * LOT),)


def test_untriggered_stop_can_be_amended() -> None:
    from bourse.domain.enums import OrderType

    b = Bench()
    b.order(1, "SELL", 10, 100)
    b.order(2, "BUY", 1, 100)  # last price 100
    b.order(1, "SELL", 10, 90, type=OrderType.STOP_LOSS_LIMIT, stop_price=95 * E8)
    events = amend(b, 1, 5, 3)
    report = of(events, ExecutionReport)[0]
    assert (report.exec_type, report.is_working) == ("REPLACED", False)
    assert b.locked(1, "BTC") == 9 * LOT + 5 * LOT


@pytest.mark.parametrize(
    ("new_lots", "order_id", "extra", "code", "msg"),
    [
        (10, 1, {}, -2038, "The requested action would change no state; rejecting"),
        (11, 1, {}, -2038, "Order amend (quantity increase) is not supported."),
        (5, 99, {}, -2038, "Unknown order sent."),
        (5, None, {}, -1102, None),
        (0, 1, {}, -1013, "Invalid quantity."),
        (5, 1, {"new_client_order_id": "other"}, -2038, "Duplicate order sent."),
        (5, 1, {"new_client_order_id": "bad id!"}, -1100, None),
    ],
)
def test_refusals_change_nothing(
    new_lots: int, order_id: int | None, extra: dict[str, Any], code: int, msg: str | None
) -> None:
    b = Bench()
    b.order(1, "SELL", 10, 100)
    b.order(1, "SELL", 10, 101, cid="other")

    def state() -> tuple[object, ...]:
        e = b.engine
        return e.balances(), e.open_orders(1, SYMBOL), e.depth(SYMBOL, 10)

    before = state()
    events = amend(b, 1, new_lots, order_id, **extra)
    assert len(events) == 1 and isinstance(events[0], Reply)
    assert events[0].code == code and (msg is None or events[0].msg == msg)
    assert state() == before


def test_off_grid_quantity_is_a_lot_size_failure() -> None:
    b = Bench()
    b.order(1, "SELL", 10, 100)
    b.ts += 1
    events = b.run(AmendOrder("x", b.ts, 1, SYMBOL, 5 * LOT + 1, "n", 1))
    assert (events[-1].code, events[-1].msg) == (-1013, "Filter failure: LOT_SIZE")


def test_another_accounts_order_and_a_halted_market_are_refused() -> None:
    b = Bench()
    b.order(1, "SELL", 10, 100)
    assert amend(b, 2, 5, 1)[-1].msg == "Unknown order sent."
    b.admin(SetSymbolStatus, SYMBOL, SymbolStatus.HALT)
    assert amend(b, 1, 5, 1)[-1].msg == "Market is closed."


def test_amended_state_survives_a_snapshot() -> None:
    b = Bench()
    b.order(1, "SELL", 10, 100, cid="orig")
    amend(b, 1, 4, 1, new_client_order_id="renamed")
    restored = Engine.restore(b.engine.snapshot())
    assert restored.state_hash() == b.engine.state_hash()
    (order,) = restored.open_orders(1, SYMBOL)
    assert (order.order.quantity, order.order.client_order_id) == (4 * LOT, "renamed")


@settings(max_examples=150, deadline=None)
@given(
    queue=st.lists(st.integers(1, 20), min_size=1, max_size=6),
    pick=st.integers(0, 5),
    cut=st.integers(1, 19),
    taker=st.integers(1, 120),
)
def test_amend_never_moves_an_order_in_its_queue(
    queue: list[int], pick: int, cut: int, taker: int
) -> None:
    """Fills after an amendment go in the same order as without it."""
    b = Bench()
    for i, lots in enumerate(queue):
        b.order(1 + i % 3, "SELL", lots, 100)
    target = pick % len(queue)
    new_lots = queue[target] - cut
    if new_lots >= 1:
        assert amend(b, 1 + target % 3, new_lots, target + 1)[-1].code == 0
        queue[target] = new_lots
    events = b.order(4, "BUY", taker, 100)
    filled = [(e.order.order_id, e.last_qty // LOT) for e in of(events, ExecutionReport)
              if e.is_maker]  # fmt: skip
    expected, left = [], taker
    for i, lots in enumerate(queue):
        if left == 0:
            break
        take = min(lots, left)
        expected.append((i + 1, take))
        left -= take
    assert filled == expected
