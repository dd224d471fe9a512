"""PERCENT_PRICE_BY_SIDE and the exchange filters (EXCHANGE_MAX_NUM_ORDERS, _ALGO_ORDERS,
_ICEBERG_ORDERS) as filters.md defines them; the admin plane sets the per-market ones."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.admin.parsing import Body, market_json, market_patch
from bourse.domain.commands import AddSymbol, NewOrder
from bourse.domain.enums import OrderType, Side, TimeInForce
from bourse.domain.errors import BinanceError
from bourse.domain.events import Reply
from bourse.domain.symbols import check_percent_price_by_side
from bourse.engine import acceptance
from tests.unit.test_engine_helpers import E8, LOT, Bench, spec

pytestmark = pytest.mark.unit

BY_SIDE = dict(
    bid_multiplier_up=12 * E8 // 10,  # BUY between 0.2 and 1.2 times the last price
    bid_multiplier_down=2 * E8 // 10,
    ask_multiplier_up=5 * E8,  # SELL between 0.8 and 5 times
    ask_multiplier_down=8 * E8 // 10,
    multiplier_up=10 * E8,  # a PERCENT_PRICE wider than both sides' bands
    multiplier_down=E8 // 10,
)


def _reply(events: list[object]) -> Reply:
    reply = events[-1]
    assert isinstance(reply, Reply)
    return reply


def _market_at(price: int, **spec_kw: Any) -> Bench:
    b = Bench(**spec_kw)
    b.order(1, "SELL", 1, price)
    b.order(2, "BUY", 1, price)
    return b


@pytest.mark.parametrize(
    ("side", "price", "passes"),
    [
        ("BUY", 120, True), ("BUY", 121, False), ("BUY", 20, True), ("BUY", 19, False),
        ("SELL", 80, True), ("SELL", 79, False), ("SELL", 500, True), ("SELL", 501, False),
    ],
)  # fmt: skip
def test_each_side_has_its_own_band(side: str, price: int, passes: bool) -> None:
    b = _market_at(100, **BY_SIDE)
    reply = _reply(b.order(3, side, 1, price))
    refused = (-1013, "Filter failure: PERCENT_PRICE_BY_SIDE")
    assert (reply.code, reply.msg) == ((0, "") if passes else refused)


def test_not_set_means_not_checked_and_no_trade_means_no_band() -> None:
    assert _reply(_market_at(100).order(3, "SELL", 1, 79)).code == 0
    assert _reply(Bench(**BY_SIDE).order(3, "BUY", 1, 10_000)).code == 0


@given(is_buy=st.booleans(), last=st.integers(1, 10**12), price=st.integers(1, 10**12))
@settings(max_examples=300, deadline=None)
def test_the_band_is_exact(is_buy: bool, last: int, price: int) -> None:
    s = spec(**BY_SIDE)
    up, down = (s.bid_multiplier_up, s.bid_multiplier_down) if is_buy else (
        s.ask_multiplier_up, s.ask_multiplier_down)  # fmt: skip
    inside = last * down <= price * E8 <= last * up
    try:
        check_percent_price_by_side(s, price, last, is_buy=is_buy)
    except BinanceError:
        assert not inside
    else:
        assert inside


def test_a_partial_by_side_filter_is_refused() -> None:
    with pytest.raises(BinanceError):
        spec(bid_multiplier_up=2 * E8).validate()


def test_the_admin_plane_sets_and_shows_the_new_filters() -> None:
    body = Body('{"bidMultiplierUp": "1.2", "bidMultiplierDown": "0.2", "askMultiplierUp": "5",'
                ' "askMultiplierDown": "0.8", "minTrailingBelowDelta": 50}')  # fmt: skip
    patched = market_patch(body, spec())
    assert patched.bid_multiplier_up == BY_SIDE["bid_multiplier_up"]
    assert patched.min_trailing_below_delta == 50
    shown = market_json(patched)
    assert (shown["askMultiplierDown"], shown["minTrailingBelowDelta"]) == ("0.80000000", 50)
    with pytest.raises(BinanceError):
        market_patch(Body('{"maxTrailingAboveDelta": 10000}'), spec())


def _two_symbols() -> Bench:
    b = Bench()
    b.admin(AddSymbol, spec(symbol="ETHUSDT", base_asset="ETH"))
    return b


def _order_on(b: Bench, symbol: str, order_type: OrderType, **kw: object) -> Reply:
    b.ts += 1
    b.oid += 1
    tif = None if order_type is OrderType.STOP_LOSS else TimeInForce.GTC
    return _reply(b.run(NewOrder(f"r{b.ts}", b.ts, 1, symbol, Side.BUY, order_type, f"c{b.oid}",
                                 quantity=10 * LOT, time_in_force=tif, **kw)))  # type: ignore[arg-type]  # fmt: skip


def test_exchange_max_num_orders_counts_every_symbol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acceptance, "EXCHANGE_MAX_NUM_ORDERS", 2)
    b = _two_symbols()
    assert _order_on(b, "BTCUSDT", OrderType.LIMIT, price=E8).code == 0
    assert _order_on(b, "ETHUSDT", OrderType.LIMIT, price=E8).code == 0
    reply = _order_on(b, "ETHUSDT", OrderType.LIMIT, price=E8)
    assert (reply.code, reply.msg) == (-1013, "Filter failure: EXCHANGE_MAX_NUM_ORDERS")


def test_exchange_max_num_algo_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acceptance, "EXCHANGE_MAX_NUM_ALGO_ORDERS", 1)
    b = _two_symbols()
    assert _order_on(b, "BTCUSDT", OrderType.STOP_LOSS, stop_price=10 * E8).code == 0
    assert _order_on(b, "ETHUSDT", OrderType.LIMIT, price=E8).code == 0  # not an algo order
    reply = _order_on(b, "ETHUSDT", OrderType.STOP_LOSS, stop_price=10 * E8)
    assert (reply.code, reply.msg) == (-1013, "Filter failure: EXCHANGE_MAX_NUM_ALGO_ORDERS")


def test_exchange_max_num_iceberg_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(acceptance, "EXCHANGE_MAX_NUM_ICEBERG_ORDERS", 1)
    b = _two_symbols()
    assert _order_on(b, "BTCUSDT", OrderType.LIMIT, price=E8, iceberg_qty=5 * LOT).code == 0
    reply = _order_on(b, "ETHUSDT", OrderType.LIMIT, price=E8, iceberg_qty=5 * LOT)
    assert (reply.code, reply.msg) == (-1013, "Filter failure: EXCHANGE_MAX_NUM_ICEBERG_ORDERS")
