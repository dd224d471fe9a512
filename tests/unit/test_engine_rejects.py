"""Every reject path with Binance's code and message; a rejected command changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from bourse.domain.commands import (
    AddSymbol,
    CancelAll,
    CancelOrder,
    CancelReplace,
    Deposit,
    NewOrder,
    SetAccountFees,
    SetSymbolStatus,
    WithdrawRequest,
)
from bourse.domain.enums import (
    CancelReplaceMode,
    OrderType,
    Outcome,
    Side,
    StpMode,
    SymbolStatus,
    TimeInForce,
)
from bourse.domain.events import AdminAction
from tests.unit.test_engine_helpers import E8, LOT, SYMBOL, Bench, reply, reports, spec

pytestmark = pytest.mark.unit

MARKET, LIMIT = OrderType.MARKET, OrderType.LIMIT
INSUFFICIENT = (-2010, "Account has insufficient balance for requested action.")


def rejected_without_change(b: Bench, events: list[Any]) -> tuple[int, str]:
    if len(events) == 2:  # an admin command: its AdminAction, then the Reply
        action = events[0]
        assert isinstance(action, AdminAction)
        assert (action.code, action.msg) == (reply(events).code, reply(events).msg)
    else:
        assert len(events) == 1
    return reply(events).code, reply(events).msg


def check(b: Bench, *args: Any, **kw: Any) -> tuple[int, str]:
    before = b.engine.state_hash()
    events = b.order(*args, **kw)
    result = rejected_without_change(b, events)
    # Only seq moved.
    after = b.engine.state_hash()
    assert before != after  # seq is state...
    b.engine._seq -= 1
    assert b.engine.state_hash() == before
    b.engine._seq += 1
    return result


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        (dict(type=LIMIT, tif=TimeInForce.GTC), (-1102, "price")),
        (dict(type=MARKET, price=100), (-1106, "price")),
        (dict(type=MARKET, quote_order_qty=E8), (-1128, "")),
        (dict(type=LIMIT, price=100, cid="bad id!"), (-1100, "newClientOrderId")),
        (dict(type=LIMIT, price=100, iceberg_qty=20 * LOT), (-2010, "IcebergQty exceeds QTY.")),
    ],
)
def test_shape_errors(kwargs: dict[str, Any], expected: tuple[int, str]) -> None:
    b = Bench()
    code, msg = check(b, 1, "BUY", 10, **kwargs)
    assert code == expected[0] and expected[1] in msg


def test_invalid_symbol() -> None:
    b = Bench()
    cmd = NewOrder("r", 1, 1, "NOPE", Side.BUY, LIMIT, "c", 10 * LOT, None, E8, None,
                   TimeInForce.GTC)  # fmt: skip
    assert rejected_without_change(b, b.run(cmd)) == (-1121, "Invalid symbol.")


def test_market_closed_but_cancels_allowed() -> None:
    b = Bench()
    b.order(1, "BUY", 10, 100)
    b.run(SetSymbolStatus("s", 1, SYMBOL, SymbolStatus.HALT))
    assert check(b, 1, "BUY", 10, 100) == (-2010, "Market is closed.")
    assert reply(b.cancel(1, 1)).code == 0


@pytest.mark.parametrize(
    ("spec_kw", "order_kw"),
    [
        (dict(order_types=(LIMIT,)), dict(type=MARKET)),
        (dict(iceberg_allowed=False), dict(price=100, iceberg_qty=5 * LOT)),
        (dict(quote_order_qty_market_allowed=False), dict(type=MARKET, quote_order_qty=E8)),
    ],
)
def test_unsupported_combination(spec_kw: dict[str, Any], order_kw: dict[str, Any]) -> None:
    b = Bench(**spec_kw)
    qty = None if "quote_order_qty" in order_kw else 10
    assert check(b, 1, "BUY", qty, **order_kw) == (-2010, "Unsupported order combination")


def test_stp_mode_not_allowed() -> None:
    b = Bench(allowed_stp_modes=(StpMode.EXPIRE_MAKER,))
    code, msg = check(b, 1, "BUY", 10, 100, stp_mode=StpMode.EXPIRE_TAKER)
    assert (code, msg) == (
        -2010,
        "This symbol does not support the selected self-trade prevention mode.",
    )


@pytest.mark.parametrize(
    ("spec_kw", "args", "kw", "filter_name"),
    [
        ({}, (10, 100), dict(price=None), "PRICE_FILTER"),  # replaced below
        (dict(tick_size=10 * E8, min_price=10 * E8), (10, 105), {}, "PRICE_FILTER"),
        ({}, (10,), dict(type=OrderType.STOP_LOSS, stop_price=E8 // 2), "PRICE_FILTER"),
        (dict(min_qty=20 * LOT), (10, 100), {}, "LOT_SIZE"),
        (dict(market_max_qty=5 * LOT), (10,), dict(type=MARKET), "MARKET_LOT_SIZE"),
        (dict(min_notional=100 * E8), (10, 100), {}, "NOTIONAL"),
        (dict(min_notional=100 * E8), (None,), dict(type=MARKET, quote_order_qty=E8), "NOTIONAL"),
        (dict(iceberg_parts=2), (10, 100), dict(iceberg_qty=3 * LOT), "ICEBERG_PARTS"),
    ],
)
def test_filter_failures(
    spec_kw: dict[str, Any], args: tuple[Any, ...], kw: dict[str, Any], filter_name: str
) -> None:
    b = Bench(**spec_kw)
    if kw.get("price", 0) is None:
        args, kw = (10, 2_000_000), {}  # above max_price
    assert check(b, 1, "BUY", *args, **kw) == (-1013, f"Filter failure: {filter_name}")


def test_percent_price_against_last_trade() -> None:
    b = Bench()
    b.order(2, "SELL", 1, 100)
    b.order(1, "BUY", 1, 100)
    assert check(b, 1, "BUY", 1, 501) == (-1013, "Filter failure: PERCENT_PRICE")
    assert check(b, 1, "BUY", 1, 19) == (-1013, "Filter failure: PERCENT_PRICE")
    assert reply(b.order(1, "BUY", 1, 20)).code == 0


def test_max_num_orders_algo_and_iceberg() -> None:
    b = Bench(max_num_orders=3, max_num_algo_orders=1, max_num_iceberg_orders=1)
    b.order(1, "BUY", 10, 100, iceberg_qty=5 * LOT)
    assert check(b, 1, "BUY", 10, 100, iceberg_qty=5 * LOT) == (
        -1013,
        "Filter failure: MAX_NUM_ICEBERG_ORDERS",
    )
    b.order(1, "SELL", 10, type=OrderType.STOP_LOSS, stop_price=90 * E8)
    assert check(b, 1, "SELL", 10, type=OrderType.STOP_LOSS, stop_price=80 * E8) == (
        -1013,
        "Filter failure: MAX_NUM_ALGO_ORDERS",
    )
    b.order(1, "BUY", 10, 99)
    assert check(b, 1, "BUY", 10, 98) == (-1013, "Filter failure: MAX_NUM_ORDERS")


def test_duplicate_client_order_id_among_open_orders_only() -> None:
    b = Bench()
    b.order(1, "BUY", 10, 100, cid="dup")
    assert check(b, 1, "BUY", 10, 99, cid="dup") == (-2010, "Duplicate order sent.")
    assert reply(b.order(2, "BUY", 10, 99, cid="dup")).code == 0  # another account
    b.cancel(1, 1)
    assert reply(b.order(1, "BUY", 10, 99, cid="dup")).code == 0


def test_would_trigger_immediately() -> None:
    b = Bench()
    b.order(2, "SELL", 1, 100)
    b.order(1, "BUY", 1, 100)
    assert check(b, 1, "SELL", 10, type=OrderType.STOP_LOSS, stop_price=100 * E8) == (
        -2010,
        "Order would trigger immediately.",
    )
    assert check(b, 1, "BUY", 10, type=OrderType.STOP_LOSS, stop_price=99 * E8) == (
        -2010,
        "Order would trigger immediately.",
    )


def test_insufficient_balance_paths() -> None:
    b = Bench(usdt=100, btc=1)
    assert check(b, 1, "BUY", 101 * 100, 1) == INSUFFICIENT  # 101 BTC at 1 = 101 USDT
    assert check(b, 1, "SELL", 101, 100) == INSUFFICIENT
    assert check(b, 1, "BUY", None, type=MARKET, quote_order_qty=101 * E8) == INSUFFICIENT
    w = b.admin(WithdrawRequest, 1, "BTC", 2 * E8, "w1")
    assert rejected_without_change(b, w) == INSUFFICIENT


def test_cancel_rejects() -> None:
    b = Bench()
    b.order(1, "BUY", 10, 100)
    unknown = (-2011, "Unknown order sent.")
    assert rejected_without_change(b, b.cancel(2, 1)) == unknown  # another account's
    assert rejected_without_change(b, b.cancel(1, 99)) == unknown
    assert rejected_without_change(b, b.cancel(1, orig_client_order_id="nope")) == unknown
    code, msg = rejected_without_change(b, b.cancel(1))
    assert code == -1102 and "orderId" in msg
    events = b.run(CancelOrder("x", 1, 1, "NOPE", 1))
    assert rejected_without_change(b, events) == (-1121, "Invalid symbol.")
    assert rejected_without_change(b, b.cancel_all(2)) == unknown
    assert rejected_without_change(b, b.run(CancelAll("x", 1, 1, "NOPE")))[0] == -1121
    b.cancel(1, 1)
    assert rejected_without_change(b, b.cancel(1, 1)) == unknown  # no longer open


def test_admin_and_funding_rejects() -> None:
    b = Bench()
    bad = (-1130, "Invalid data sent for a parameter.")
    for kind, args in (
        (Deposit, (0, "BTC", E8)),
        (Deposit, (1, "btc", E8)),
        (Deposit, (1, "BTC", 0)),
        (Deposit, (1, "BTC", 2**63 - 1)),
        (WithdrawRequest, (0, "BTC", E8, "w1")),
        (SetAccountFees, (0, 0, 0)),
        (SetAccountFees, (1, -1, 0)),
        (SetAccountFees, (1, 0, E8 + 1)),
        (AddSymbol, (spec(),)),
    ):
        assert rejected_without_change(b, b.admin(kind, *args)) == bad, (kind, args)
    code, _ = rejected_without_change(b, b.admin(AddSymbol, spec(symbol="X", tick_size=0)))
    assert code == -1130
    events = b.admin(SetSymbolStatus, "NOPE", SymbolStatus.HALT)
    assert rejected_without_change(b, events)[0] == -1121


def _replace(b: Bench, mode: CancelReplaceMode, order_id: int, price: int) -> list[Any]:
    b.ts += 1
    new = NewOrder("n", b.ts, 1, SYMBOL, Side.BUY, LIMIT, f"n{b.ts}", 10 * LOT, None,
                   price * E8, None, TimeInForce.GTC)  # fmt: skip
    return b.run(CancelReplace("cr", b.ts, mode, CancelOrder("cr", b.ts, 1, SYMBOL, order_id), new))


def test_cancel_replace_outcomes() -> None:
    b = Bench(usdt=1000)
    b.order(1, "BUY", 10, 100)
    events = _replace(b, CancelReplaceMode.STOP_ON_FAILURE, 1, 90)
    assert reply(events).code == 0 and reports(events) == [(1, "CANCELED", "CANCELED"),
                                                          (2, "NEW", "NEW")]  # fmt: skip
    # Cancel fails, STOP_ON_FAILURE: new not attempted.
    events = _replace(b, CancelReplaceMode.STOP_ON_FAILURE, 1, 90)
    r = reply(events)
    assert (r.code, r.msg) == (-2022, "Order cancel-replace failed.")
    assert [p.outcome for p in r.parts] == [Outcome.FAILURE, Outcome.NOT_ATTEMPTED]
    assert len(events) == 1
    # Cancel fails, ALLOW_FAILURE: new placed anyway.
    events = _replace(b, CancelReplaceMode.ALLOW_FAILURE, 1, 80)
    r = reply(events)
    assert (r.code, r.msg) == (-2021, "Order cancel-replace partially failed.")
    assert [p.outcome for p in r.parts] == [Outcome.FAILURE, Outcome.SUCCESS]
    # Cancel succeeds, new fails (1000 USDT cannot buy 0.1 BTC at 20000).
    events = _replace(b, CancelReplaceMode.STOP_ON_FAILURE, 2, 20_000)
    r = reply(events)
    assert r.code == -2021
    assert [(p.outcome, p.code) for p in r.parts] == [(Outcome.SUCCESS, 0),
                                                      (Outcome.FAILURE, -2010)]  # fmt: skip
    # Both fail under ALLOW_FAILURE.
    events = _replace(b, CancelReplaceMode.ALLOW_FAILURE, 2, 20_000)
    assert reply(events).code == -2022 and len(events) == 1


def test_cancel_replace_new_part_uses_the_released_lock() -> None:
    b = Bench(usdt=10)
    b.order(1, "BUY", 10, 100)  # locks all 10 USDT
    events = _replace(b, CancelReplaceMode.STOP_ON_FAILURE, 1, 99)
    assert reply(events).code == 0


def test_cancel_replace_shape_error_rejects_everything() -> None:
    b = Bench()
    b.order(1, "BUY", 10, 100)
    new = NewOrder("n", 5, 1, SYMBOL, Side.BUY, LIMIT, "n", 10 * LOT)  # no price
    events = b.run(
        CancelReplace("cr", 5, CancelReplaceMode.ALLOW_FAILURE,
                      CancelOrder("cr", 5, 1, SYMBOL, 1), new)
    )  # fmt: skip
    assert rejected_without_change(b, events)[0] == -1102
    assert b.locked(1, "USDT") == 10 * E8


@pytest.mark.parametrize(("account", "symbol"), [(2, SYMBOL), (1, "ETHUSDT")])
def test_cancel_replace_parts_must_name_one_account_and_symbol(account: int, symbol: str) -> None:
    b = Bench()
    b.order(1, "BUY", 10, 100)
    new = NewOrder("n", 5, account, symbol, Side.BUY, LIMIT, "n", 10 * LOT, None, 90 * E8,
                   None, TimeInForce.GTC)  # fmt: skip
    events = b.run(
        CancelReplace("cr", 5, CancelReplaceMode.ALLOW_FAILURE,
                      CancelOrder("cr", 5, 1, SYMBOL, 1), new)
    )  # fmt: skip
    assert rejected_without_change(b, events) == (-1130, "Invalid data sent for a parameter.")
    assert b.locked(1, "USDT") == 10 * E8
