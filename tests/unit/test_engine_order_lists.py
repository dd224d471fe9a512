"""Order lists in the engine: OCO, OTO, OTOCO (docs/engine.md, "Order lists")."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.domain import errors
from bourse.domain.codec import decode_command, encode_command
from bourse.domain.commands import CancelOrderList, NewOrder, NewOrderList
from bourse.domain.enums import ExecutionType, OrderStatus, OrderType, Side, TimeInForce
from bourse.domain.events import ExecutionReport, ListStatus
from bourse.engine import Engine
from bourse.engine.invariants import problems
from tests.unit.test_engine_helpers import E8, LOT, SYMBOL, Bench, of, reply, reports

pytestmark = pytest.mark.unit

LM = OrderType.LIMIT_MAKER
SL = OrderType.STOP_LOSS
SLL = OrderType.STOP_LOSS_LIMIT
TP = OrderType.TAKE_PROFIT
TPL = OrderType.TAKE_PROFIT_LIMIT
LIMIT = OrderType.LIMIT
MARKET = OrderType.MARKET
GTC = TimeInForce.GTC


def leg(
    acct: int,
    side: str,
    type: OrderType,
    qty: int,
    *,
    price: int | None = None,
    stop: int | None = None,
    cid: str = "",
    tif: TimeInForce | None = None,
) -> NewOrder:
    """One order of a list; quantities in lots, prices in whole USDT."""
    if tif is None and type in (LIMIT, SLL, TPL):
        tif = GTC
    return NewOrder(
        "", 0, acct, SYMBOL, Side(side), type, cid or f"{type.lower()}-{side}-{price}-{stop}",
        quantity=qty * LOT, price=None if price is None else price * E8,
        stop_price=None if stop is None else stop * E8, time_in_force=tif,
    )  # fmt: skip


def place_list(b: Bench, kind: str, *legs: NewOrder, list_cid: str = "") -> list[Any]:
    b.ts += 1
    acct = legs[0].account_id
    cmd = NewOrderList(f"l{b.ts}", b.ts, acct, SYMBOL, kind, list_cid or f"list{b.ts}", legs)
    assert decode_command(encode_command(cmd)) == cmd
    return b.run(cmd)


def cancel_list(b: Bench, acct: int, list_id: int | None = None, **kw: Any) -> list[Any]:
    b.ts += 1
    return b.run(CancelOrderList(f"cl{b.ts}", b.ts, acct, SYMBOL, list_id, **kw))


def list_statuses(events: list[Any]) -> list[tuple[int, str, str]]:
    return [
        (e.order_list.order_list_id, e.order_list.list_status_type, e.order_list.list_order_status)
        for e in of(events, ListStatus)
    ]


def traded_at(b: Bench, price: int) -> None:
    """Make ``price`` the last trade price (accounts 3 and 4)."""
    b.order(3, "SELL", 1, price)
    b.order(4, "BUY", 1, price)
    assert b.engine._symbols[SYMBOL].last_price == price * E8


def refused(b: Bench, events: list[Any]) -> tuple[int, str]:
    r = reply(events)
    assert len(events) == 1, "a refused list changes nothing"
    return r.code, r.msg


def test_sell_oco_locks_once_and_answers_as_binance() -> None:
    b = Bench()
    traded_at(b, 100)
    before = b.free(1, "BTC")
    events = place_list(b, "OCO", leg(1, "SELL", LM, 5, price=110), leg(1, "SELL", SLL, 5,
                        price=89, stop=90))  # fmt: skip
    r = reply(events)
    assert r.code == 0 and r.order_list is not None
    assert r.order_list.contingency_type == "OCO"
    assert (r.order_list.list_status_type, r.order_list.list_order_status) == (
        "EXEC_STARTED",
        "EXECUTING",
    )
    # The stop-loss leg gets the first id (as in Binance's example), the list id starts at 0.
    (sl_id, sl_cid), (lm_id, _) = r.order_list.orders
    assert sl_cid.startswith("stop_loss_limit") and lm_id == sl_id + 1
    assert [p.result.order.order_list_id for p in r.parts if p.result] == [0, 0]
    assert list_statuses(events) == [(0, "EXEC_STARTED", "EXECUTING")]
    assert b.free(1, "BTC") == before - 5 * LOT
    assert b.locked(1, "BTC") == 5 * LOT


def test_oco_limit_maker_fill_expires_the_stop_and_finishes_the_list() -> None:
    b = Bench()
    traded_at(b, 100)
    events = place_list(b, "OCO", leg(1, "SELL", LM, 5, price=110), leg(1, "SELL", SL, 5, stop=90))
    sl_id, lm_id = [oid for oid, _ in reply(events).order_list.orders]  # type: ignore[union-attr]
    events = b.order(2, "BUY", 2, 110)
    assert (sl_id, "EXPIRED", "EXPIRED") in reports(events)
    assert list_statuses(events) == [(0, "ALL_DONE", "ALL_DONE")]
    assert b.locked(1, "BTC") == 3 * LOT  # the limit maker keeps working alone
    events = b.order(2, "BUY", 3, 110)
    assert (lm_id, "TRADE", "FILLED") in reports(events)
    assert b.locked(1, "BTC") == 0
    assert not list_statuses(events)


def test_oco_stop_trigger_expires_the_limit_maker() -> None:
    b = Bench()
    traded_at(b, 100)
    events = place_list(b, "OCO", leg(1, "SELL", LM, 5, price=110), leg(1, "SELL", SL, 5, stop=95))
    sl_id, lm_id = [oid for oid, _ in reply(events).order_list.orders]  # type: ignore[union-attr]
    b.order(2, "BUY", 10, 80)  # liquidity for the triggered stop
    events = traded_at_events(b, 95)
    got = reports(events)
    assert (lm_id, "EXPIRED", "EXPIRED") in got
    assert (sl_id, "TRADE", "FILLED") in got
    assert got.index((sl_id, "NEW", "NEW")) < got.index((lm_id, "EXPIRED", "EXPIRED"))
    assert list_statuses(events) == [(0, "ALL_DONE", "ALL_DONE")]
    assert b.locked(1, "BTC") == 0
    assert not b.engine.open_orders(1)


def traded_at_events(b: Bench, price: int) -> list[Any]:
    b.order(3, "SELL", 1, price)
    return b.order(4, "BUY", 1, price)


def test_buy_oco_locks_the_larger_leg_and_releases_it_all_on_cancel() -> None:
    b = Bench()
    traded_at(b, 100)
    before = b.free(1, "USDT")
    place_list(b, "OCO", leg(1, "BUY", SLL, 2, price=130, stop=120), leg(1, "BUY", LM, 2, price=90))
    assert b.locked(1, "USDT") == 2 * LOT * 130  # max(130, 90) * 0.02 BTC
    events = cancel_list(b, 1, 0)
    r = reply(events)
    assert r.code == 0 and r.order_list is not None
    assert r.order_list.list_status_type == "ALL_DONE"
    assert [p.result.status for p in r.parts if p.result] == ["CANCELED", "CANCELED"]
    assert b.locked(1, "USDT") == 0 and b.free(1, "USDT") == before


def test_buy_oco_limit_maker_fill_releases_the_stop_legs_surplus() -> None:
    b = Bench()
    traded_at(b, 100)
    place_list(b, "OCO", leg(1, "BUY", SLL, 2, price=130, stop=120), leg(1, "BUY", LM, 2, price=90))
    b.order(2, "SELL", 1, 90)
    assert b.locked(1, "USDT") == 1 * LOT * 90  # what the rest of the limit maker needs


def test_cancelling_one_leg_cancels_the_list() -> None:
    b = Bench()
    traded_at(b, 100)
    events = place_list(b, "OCO", leg(1, "SELL", LM, 5, price=110), leg(1, "SELL", SL, 5, stop=90))
    sl_id, lm_id = [oid for oid, _ in reply(events).order_list.orders]  # type: ignore[union-attr]
    events = b.cancel(1, lm_id)
    assert {(oid, st) for oid, _x, st in reports(events)} == {
        (sl_id, "CANCELED"),
        (lm_id, "CANCELED"),
    }
    assert list_statuses(events) == [(0, "ALL_DONE", "ALL_DONE")]
    assert b.locked(1, "BTC") == 0


def test_cancel_list_by_client_id_and_refusals() -> None:
    b = Bench()
    traded_at(b, 100)
    place_list(b, "OCO", leg(1, "SELL", LM, 5, price=110), leg(1, "SELL", SL, 5, stop=90),
               list_cid="mine")  # fmt: skip
    assert refused(b, cancel_list(b, 1)) == (-1102, errors.mandatory("orderListId").msg)
    assert refused(b, cancel_list(b, 2, 0))[0] == -2011  # someone else's list
    assert refused(b, cancel_list(b, 1, 0, list_client_order_id="other"))[0] == -2011
    assert refused(b, cancel_list(b, 1, 7))[0] == -2011
    assert reply(cancel_list(b, 1, list_client_order_id="mine")).code == 0
    assert refused(b, cancel_list(b, 1, 0))[0] == -2011  # already done


def test_cancel_all_cancels_lists_whole() -> None:
    b = Bench()
    traded_at(b, 100)
    place_list(b, "OCO", leg(1, "SELL", LM, 5, price=110), leg(1, "SELL", SL, 5, stop=90))
    b.order(1, "SELL", 1, 120)
    events = b.cancel_all(1)
    assert len(reply(events).parts) == 3
    assert b.locked(1, "BTC") == 0


@pytest.mark.parametrize(
    ("above", "below", "code"),
    [
        (leg(1, "SELL", SL, 1, stop=90), leg(1, "SELL", SL, 1, stop=80), -1197),
        (leg(1, "SELL", LM, 1, price=110), leg(1, "SELL", TP, 1, stop=90), -1199),
        (leg(1, "SELL", LM, 1, price=110), leg(1, "SELL", LM, 1, price=90), -1168),
        (leg(1, "SELL", TP, 1, stop=110), leg(1, "SELL", LM, 1, price=90), -1166),
        (leg(1, "SELL", LIMIT, 1, price=110), leg(1, "SELL", SL, 1, stop=90), -1158),
        (leg(1, "BUY", LM, 1, price=110), leg(1, "BUY", TP, 1, stop=90), -1165),
        (leg(1, "BUY", TP, 1, stop=110), leg(1, "BUY", TP, 1, stop=90), -1198),
        (leg(1, "BUY", SL, 1, stop=110), leg(1, "BUY", SL, 1, stop=90), -1196),
        # prices: above must be above the last price, below below it
        (leg(1, "SELL", LM, 1, price=99), leg(1, "SELL", SL, 1, stop=90), -2010),
        (leg(1, "SELL", LM, 1, price=110), leg(1, "SELL", SL, 1, stop=101), -2010),
        (leg(1, "BUY", SL, 1, stop=99), leg(1, "BUY", LM, 1, price=90), -2010),
    ],
)
def test_oco_leg_rules_and_price_relationship(above: NewOrder, below: NewOrder, code: int) -> None:
    b = Bench()
    traded_at(b, 100)
    got = refused(b, place_list(b, "OCO", above, below))
    assert got[0] == code
    if code == -2010:
        assert got[1] == errors.MSG_OCO_BAD_PRICES


def test_list_refusals_change_nothing() -> None:
    b = Bench()
    traded_at(b, 100)
    ok = (leg(1, "SELL", LM, 5, price=110), leg(1, "SELL", SL, 5, stop=90))
    assert refused(b, place_list(b, "OCO", ok[0]))[0] == -1130
    assert refused(b, place_list(b, "OCO", *ok, list_cid="bad id!"))[0] == -1100
    too_much = (leg(1, "SELL", LM, 20_000, price=110), leg(1, "SELL", SL, 20_000, stop=90))
    assert refused(b, place_list(b, "OCO", *too_much)) == (-2010, errors.MSG_INSUFFICIENT_BALANCE)
    assert reply(place_list(b, "OCO", *ok, list_cid="same")).code == 0
    again = (leg(1, "SELL", LM, 5, price=111, cid="a"), leg(1, "SELL", SL, 5, stop=91, cid="b"))
    assert refused(b, place_list(b, "OCO", *again, list_cid="same")) == (
        -2010,
        errors.MSG_DUPLICATE_ORDER,
    )
    working = leg(1, "BUY", SL, 1, stop=120)
    assert refused(b, place_list(b, "OTO", working, leg(1, "SELL", LIMIT, 1, price=120)))[0] == (
        -1116
    )


def test_max_num_orders_counts_every_order_of_the_list() -> None:
    b = Bench(max_num_orders=3)
    traded_at(b, 100)
    b.order(1, "SELL", 1, 150)
    b.order(1, "SELL", 1, 151)
    ok = (leg(1, "SELL", LM, 5, price=110), leg(1, "SELL", SL, 5, stop=90))
    assert refused(b, place_list(b, "OCO", *ok)) == (-1013, "Filter failure: MAX_NUM_ORDERS")


def test_oto_places_the_pending_order_when_the_working_order_fills() -> None:
    b = Bench()
    traded_at(b, 100)
    events = place_list(b, "OTO", leg(1, "BUY", LIMIT, 2, price=95),
                        leg(1, "SELL", LIMIT, 2, price=120))  # fmt: skip
    r = reply(events)
    working_id, pending_id = [oid for oid, _ in r.order_list.orders]  # type: ignore[union-attr]
    assert [p.result.status for p in r.parts if p.result] == ["NEW", "PENDING_NEW"]
    assert b.locked(1, "BTC") == 0  # the pending order locks nothing yet
    assert [o.status for o in b.engine.open_orders(1)] == ["NEW", "PENDING_NEW"]
    events = b.order(2, "SELL", 1, 95)
    assert not list_statuses(events)
    events = b.order(2, "SELL", 1, 95)
    got = reports(events)
    assert (working_id, "TRADE", "FILLED") in got and (pending_id, "NEW", "NEW") in got
    assert list_statuses(events) == [(0, "ALL_DONE", "ALL_DONE")]
    assert b.locked(1, "BTC") == 2 * LOT
    assert [o.order.order_id for o in b.engine.open_orders(1)] == [pending_id]


def test_oto_working_order_filled_at_once_answers_pending_new_then_places_it() -> None:
    b = Bench()
    traded_at(b, 100)
    b.order(2, "SELL", 2, 100)
    b.order(3, "BUY", 5, 90)
    events = place_list(b, "OTO", leg(1, "BUY", LIMIT, 2, price=100), leg(1, "SELL", MARKET, 2))
    r = reply(events)
    assert [p.result.status for p in r.parts if p.result] == ["FILLED", "PENDING_NEW"]
    assert r.order_list.list_status_type == "EXEC_STARTED"  # type: ignore[union-attr]
    assert list_statuses(events) == [(0, "EXEC_STARTED", "EXECUTING"), (0, "ALL_DONE", "ALL_DONE")]
    pending_id = r.order_list.orders[1][0]  # type: ignore[union-attr]
    assert (pending_id, "TRADE", "FILLED") in reports(events)


def test_oto_working_ioc_that_expires_expires_the_pending_order() -> None:
    b = Bench()
    traded_at(b, 100)
    events = place_list(b, "OTO", leg(1, "BUY", LIMIT, 2, price=95, tif=TimeInForce.IOC),
                        leg(1, "SELL", LIMIT, 2, price=120))  # fmt: skip
    assert [s for _o, _x, s in reports(events)] == ["NEW", "PENDING_NEW", "EXPIRED", "EXPIRED"]
    assert reply(events).order_list.list_status_type == "ALL_DONE"  # type: ignore[union-attr]
    assert not b.engine.open_orders(1)


def test_cancelling_the_pending_order_cancels_the_working_one() -> None:
    b = Bench()
    traded_at(b, 100)
    events = place_list(b, "OTO", leg(1, "BUY", LIMIT, 2, price=95),
                        leg(1, "SELL", LIMIT, 2, price=120, cid="pend"))  # fmt: skip
    events = b.cancel(1, orig_client_order_id="pend")
    assert sorted(s for _o, _x, s in reports(events)) == ["CANCELED", "CANCELED"]
    assert b.locked(1, "USDT") == 0 and not b.engine.open_orders(1)


def test_pending_order_that_cannot_be_paid_expires() -> None:
    b = Bench(btc=0)
    traded_at_funded(b)
    place_list(b, "OTO", leg(1, "BUY", LIMIT, 2, price=95), leg(1, "SELL", LIMIT, 5, price=120))
    events = b.order(2, "SELL", 2, 95)
    expired = [e for e in of(events, ExecutionReport) if e.exec_type == ExecutionType.EXPIRED]
    assert [e.reject_reason for e in expired] == ["INSUFFICIENT_BALANCES"]
    assert list_statuses(events) == [(0, "ALL_DONE", "ALL_DONE")]


def traded_at_funded(b: Bench) -> None:
    from bourse.domain.commands import Deposit

    for acct in (2, 3):
        b.admin(Deposit, acct, "BTC", 10 * E8)
    traded_at(b, 100)


def test_otoco_places_the_oco_pair_after_the_working_fill() -> None:
    b = Bench()
    traded_at(b, 100)
    pair = (leg(1, "SELL", LM, 2, price=120), leg(1, "SELL", SL, 2, stop=90))
    events = place_list(b, "OTOCO", leg(1, "BUY", LIMIT, 2, price=100), *pair)
    r = reply(events)
    assert r.order_list.contingency_type == "OTO"  # type: ignore[union-attr]
    ids = [oid for oid, _ in r.order_list.orders]  # type: ignore[union-attr]
    assert [p.result.order.type for p in r.parts if p.result] == [LIMIT, SL, LM]
    events = b.order(2, "SELL", 2, 100)
    assert list_statuses(events) == [(0, "EXEC_STARTED", "EXECUTING")]
    assert b.locked(1, "BTC") == 2 * LOT  # the pair locks once
    events = b.order(3, "BUY", 2, 120)
    assert (ids[1], "EXPIRED", "EXPIRED") in reports(events)
    assert list_statuses(events) == [(0, "ALL_DONE", "ALL_DONE")]
    assert b.locked(1, "BTC") == 0


def test_limit_maker_leg_expired_by_stp_expires_the_list() -> None:
    b = Bench()
    traded_at(b, 100)
    place_list(b, "OCO", leg(1, "SELL", LM, 5, price=110), leg(1, "SELL", SL, 5, stop=90))
    b.order(1, "BUY", 1, 110, stp_mode="EXPIRE_MAKER")
    assert b.locked(1, "BTC") == 0
    assert [o.order.order_list_id for o in b.engine.open_orders(1)] == [-1]  # the taker rests
    assert not b.engine._lists.open


def test_snapshot_keeps_open_lists() -> None:
    b = Bench()
    traded_at(b, 100)
    place_list(b, "OCO", leg(1, "SELL", LM, 5, price=110), leg(1, "SELL", SL, 5, stop=90))
    place_list(b, "OTOCO", leg(2, "BUY", LIMIT, 2, price=99),
               leg(2, "SELL", LM, 2, price=120), leg(2, "SELL", SL, 2, stop=90))  # fmt: skip
    b.order(3, "SELL", 1, 99)
    restored = Engine.restore(b.engine.snapshot())
    assert restored.state_hash() == b.engine.state_hash()
    assert not problems(restored)
    b.ts += 1
    cmd = NewOrder("n", b.ts, 3, SYMBOL, Side.SELL, LIMIT, "fill", quantity=LOT * 1,
                   price=99 * E8, time_in_force=GTC)  # fmt: skip
    assert restored.process(cmd) == b.engine.process(cmd)
    assert restored.state_hash() == b.engine.state_hash()


# ---------------------------------------------------------------------------------------------
# Random streams: whatever lists and orders come, money is conserved, the engine's invariants
# hold, and a snapshot taken anywhere continues identically.

_PRICES = st.integers(85, 115)


@st.composite
def _command(draw: st.DrawFn, ts: int) -> Any:
    acct = draw(st.integers(1, 3))
    kind = draw(st.sampled_from(["order", "oco", "oto", "otoco", "cancel", "cancel_list"]))
    side = draw(st.sampled_from(["BUY", "SELL"]))
    qty = draw(st.integers(1, 4))
    cid = f"c{ts}"
    if kind == "order":
        return NewOrder(f"r{ts}", ts, acct, SYMBOL, Side(side), LIMIT, cid, quantity=qty * LOT,
                        price=draw(_PRICES) * E8, time_in_force=GTC)  # fmt: skip
    if kind == "cancel":
        from bourse.domain.commands import CancelOrder

        return CancelOrder(f"r{ts}", ts, acct, SYMBOL, draw(st.integers(1, ts + 1)))
    if kind == "cancel_list":
        return CancelOrderList(f"r{ts}", ts, acct, SYMBOL, draw(st.integers(0, ts)))
    hi, lo = draw(st.integers(101, 115)), draw(st.integers(85, 99))
    if side == "SELL":
        pair = (leg(acct, side, LM, qty, price=hi, cid=cid + "a"),
                leg(acct, side, draw(st.sampled_from([SL, SLL])), qty, price=lo - 1, stop=lo,
                    cid=cid + "b"))  # fmt: skip
    else:
        pair = (leg(acct, side, draw(st.sampled_from([SL, SLL])), qty, price=hi + 1, stop=hi,
                    cid=cid + "a"),
                leg(acct, side, LM, qty, price=lo, cid=cid + "b"))  # fmt: skip
    pair = (_plain_price(pair[0]), _plain_price(pair[1]))
    if kind == "oco":
        return NewOrderList(f"r{ts}", ts, acct, SYMBOL, "OCO", f"l{ts}", pair)
    other = "SELL" if side == "BUY" else "BUY"
    working = leg(acct, other, LIMIT, qty, price=draw(_PRICES), cid=cid + "w")
    if kind == "oto":
        pending = leg(acct, side, draw(st.sampled_from([LIMIT, MARKET])), qty,
                      price=draw(_PRICES), cid=cid + "p")  # fmt: skip
        return NewOrderList(f"r{ts}", ts, acct, SYMBOL, "OTO", f"l{ts}",
                            (working, _plain_price(pending)))  # fmt: skip
    return NewOrderList(f"r{ts}", ts, acct, SYMBOL, "OTOCO", f"l{ts}", (working, *pair))


def _plain_price(order: NewOrder) -> NewOrder:
    from dataclasses import replace

    if order.type in (SL, MARKET, TP):
        return replace(order, price=None, time_in_force=None)
    return order


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_random_list_streams_keep_invariants_and_snapshots(data: st.DataObject) -> None:
    b = Bench(accounts=3)
    traded_at_random(b)
    totals = _totals(b.engine)
    for i in range(data.draw(st.integers(5, 40))):
        b.ts += 1
        cmd = data.draw(_command(b.ts))
        if i % 7 == 3:
            restored = Engine.restore(b.engine.snapshot())
            assert restored.state_hash() == b.engine.state_hash()
            assert restored.process(cmd) == b.run(cmd)
            assert restored.state_hash() == b.engine.state_hash()
        else:
            b.run(cmd)
        assert _totals(b.engine) == totals
    for acct in (1, 2, 3):
        b.cancel_all(acct)
        assert b.locked(acct, "BTC") == 0 and b.locked(acct, "USDT") == 0
    assert not b.engine._lists.open


def traded_at_random(b: Bench) -> None:
    b.order(1, "SELL", 1, 100)
    b.order(2, "BUY", 1, 100)


def _totals(engine: Engine) -> dict[str, int]:
    out: dict[str, int] = {}
    for assets in engine.balances().values():
        for asset, (free, locked) in assets.items():
            out[asset] = out.get(asset, 0) + free + locked
    return out


def test_order_status_enum_has_pending_new() -> None:
    assert OrderStatus.PENDING_NEW == "PENDING_NEW"
