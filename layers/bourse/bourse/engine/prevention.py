"""Self-trade prevention: what happens when a taker would trade with its own account's
resting order (docs/engine.md, "Matching, fees and self-trade prevention")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bourse.domain.amounts import SCALE
from bourse.domain.enums import ExecutionType, OrderStatus, StpMode
from bourse.domain.events import ExecutionReport, PreventedMatch
from bourse.engine.command_output import release, release_part
from bourse.engine.orders import Order
from bourse.engine.symbol_state import SymbolState

if TYPE_CHECKING:
    from bourse.engine.state import EngineState

_PREVENTION = ExecutionType.TRADE_PREVENTION
_S_EIM = OrderStatus.EXPIRED_IN_MATCH
_DECREMENT = StpMode.DECREMENT


def prevent(
    eng: EngineState,
    sym: SymbolState,
    taker: Order,
    maker: Order,
    level: Any,
    touched: dict[int, int],
) -> bool:
    """Apply the taker's STP mode to a self-match; True if the taker expired."""
    stp = taker.stp_mode
    price = maker.price
    if taker.quote_rem > 0:
        # A quote-qty taker's "remaining quantity": what its budget buys at this price.
        taker_avail = taker.quote_rem * SCALE // price
        taker_avail -= taker_avail % sym.step
    else:
        taker_avail = taker.remaining
    if stp == _DECREMENT:
        # Both lose the prevented match's quantity; whichever has no more left expires.
        amount = maker.remaining if maker.remaining < taker_avail else taker_avail
        maker_expires = maker.remaining == amount
        taker_expires = taker_avail == amount
        maker_qty = taker_qty = amount
    else:
        maker_expires = stp != StpMode.EXPIRE_TAKER
        taker_expires = stp != StpMode.EXPIRE_MAKER
        maker_qty = maker.remaining if maker_expires else 0
        taker_qty = taker_avail if taker_expires else 0
    pm_id = sym.prevented_id + 1
    sym.prevented_id = pm_id
    ts = eng._ts
    events = eng._events
    events.append(
        PreventedMatch(0, ts, sym.spec.symbol, pm_id, taker.order_id, maker.order_id,
                       taker.account_id, stp, price, maker_qty, taker_qty)
    )  # fmt: skip
    if maker_expires:
        if price not in touched:
            touched[price] = level.qty
        side = sym.book.asks if taker.is_buy else sym.book.bids
        side.unlink(maker)
        del sym.book.orders[maker.order_id]
        del sym.by_account[maker.account_id][maker.info.client_order_id]
        release(eng, maker)
        maker.status = _S_EIM
        maker.prevented_qty += maker_qty
        events.append(
            ExecutionReport(
                0, ts, maker.info, _PREVENTION, _S_EIM, "NONE", 0, 0, 0, maker.executed,
                maker.cum_quote, 0, "", -1, True, True, maker.working_ts, "", pm_id,
                maker.prevented_qty, maker_qty, taker.order_id,
            )
        )  # fmt: skip
        if maker.info.order_list_id >= 0:
            eng._lists.on_maker_expired(eng, sym, maker)
    elif maker_qty:
        _decrement_maker(eng, sym, maker, maker_qty, level, touched)
        events.append(
            ExecutionReport(
                0, ts, maker.info, _PREVENTION, maker.status, "NONE", 0, 0, 0,
                maker.executed, maker.cum_quote, 0, "", -1, True, True, maker.working_ts,
                "", pm_id, maker.prevented_qty, maker_qty, taker.order_id,
            )
        )  # fmt: skip
        if maker.info.order_list_id >= 0:
            # An OCO leg that lost quantity works alone from here, as if it had traded.
            eng._lists.on_maker_trade(eng, sym, maker)
    if taker_expires:
        release(eng, taker)
        taker.status = _S_EIM
        taker.prevented_qty += taker_qty
        events.append(
            ExecutionReport(
                0, ts, taker.info, _PREVENTION, _S_EIM, "NONE", 0, 0, 0, taker.executed,
                taker.cum_quote, 0, "", -1, True, False, ts, "", pm_id,
                taker.prevented_qty, taker_qty, maker.order_id,
            )
        )  # fmt: skip
    elif taker_qty:
        _decrement_taker(eng, taker, taker_qty, price)
        events.append(
            ExecutionReport(
                0, ts, taker.info, _PREVENTION, taker.status, "NONE", 0, 0, 0,
                taker.executed, taker.cum_quote, 0, "", -1, True, False, ts, "", pm_id,
                taker.prevented_qty, taker_qty, maker.order_id,
            )
        )  # fmt: skip
    return taker_expires


def _decrement_maker(
    eng: EngineState, sym: SymbolState, maker: Order, qty: int, level: Any, touched: dict[int, int]
) -> None:
    """STP DECREMENT of a resting order that stays: it keeps its place in the queue with
    ``qty`` less, and releases what that quantity had locked."""
    price = maker.price
    if price not in touched:
        touched[price] = level.qty
    maker.remaining -= qty
    maker.prevented_qty += qty
    level.total -= qty
    if maker.displayed > maker.remaining:
        level.qty -= maker.displayed - maker.remaining
        maker.displayed = maker.remaining
    release_part(eng, maker, price * qty // SCALE if maker.is_buy else qty)


def _decrement_taker(eng: EngineState, taker: Order, qty: int, price: int) -> None:
    """STP DECREMENT of a taker that goes on matching: ``qty`` less (a quote-qty taker's
    budget loses that quantity's notional at ``price``), and its lock with it."""
    taker.prevented_qty += qty
    quote = price * qty // SCALE
    if taker.quote_rem > 0:
        taker.quote_rem -= quote
    else:
        taker.remaining -= qty
    if not taker.is_buy:
        release_part(eng, taker, qty)
    elif taker.is_market:
        release_part(eng, taker, quote)
    else:
        release_part(eng, taker, taker.price * qty // SCALE)
