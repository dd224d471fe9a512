"""Matching: a taker against the opposite side of the book, trade by trade (balances and
fees settled per fill, icebergs refilled, self-matches handed to ``prevention``), then
resting, expiring or finishing what is left of it. The hot path: ``_match`` runs once per
fill, so it keeps what it reads in locals and calls as little as it can.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bourse.domain.amounts import SCALE
from bourse.domain.enums import ExecutionType, OrderStatus, StpMode, TimeInForce
from bourse.domain.events import ExecutionReport, Fill, Trade
from bourse.engine.book import BookSide, compact
from bourse.engine.command_output import release
from bourse.engine.orders import Order
from bourse.engine.prevention import prevent
from bourse.engine.symbol_state import SymbolState

if TYPE_CHECKING:
    from bourse.engine.state import EngineState

_TRADE = ExecutionType.TRADE
_EXPIRED = ExecutionType.EXPIRED
_S_PARTIAL = OrderStatus.PARTIALLY_FILLED
_S_FILLED = OrderStatus.FILLED
_S_EXPIRED = OrderStatus.EXPIRED
_STP_NONE = StpMode.NONE
_GTC = TimeInForce.GTC
_FOK = TimeInForce.FOK


def take(eng: EngineState, sym: SymbolState, taker: Order, fills: list[Fill] | None) -> None:
    """Match ``taker`` against the opposite side, then rest, expire or finish it."""
    is_buy = taker.is_buy
    opp = sym.book.asks if is_buy else sym.book.bids
    keys = opp.keys
    if keys and (
        taker.is_market or (taker.price >= -keys[-1] if is_buy else taker.price <= keys[-1])
    ):
        if taker.tif == _FOK and not _fok_fillable(opp, taker):
            _expire_taker(eng, taker)
            return
        if _match(eng, sym, taker, fills):
            return  # expired in match
    # By quote, FILLED was decided by the last trade (_quote_spent); else the book ran out.
    unfilled = taker.status != _S_FILLED if taker.info.quote_order_qty else taker.remaining > 0
    if unfilled:
        if not taker.is_market and (taker.tif == _GTC or taker.tif is None):
            rest(eng, sym, taker)
        else:
            _expire_taker(eng, taker)
    elif taker.lock:
        release(eng, taker)


def _match(eng: EngineState, sym: SymbolState, taker: Order, fills: list[Fill] | None) -> bool:
    """The match loop; True if the taker expired in match (STP)."""
    events = eng._events
    ts = eng._ts
    book = sym.book
    is_buy = taker.is_buy
    if is_buy:
        opp = book.asks
        touched = eng._touched_asks
    else:
        opp = book.bids
        touched = eng._touched_bids
    keys = opp.keys
    levels = opp.levels
    is_market = taker.is_market
    limit = taker.price
    by_quote = taker.quote_rem > 0
    acct = taker.account_id
    stp = taker.stp_mode
    step = sym.step
    info = taker.info
    bal = eng._bal
    fees = bal.fees
    sym_rates = sym.rates  # the market's commissions, unless the account has its own
    taker_rate = fees.get(acct, sym_rates)[1]
    base, quote_asset = sym.base, sym.quote
    fee_base, fee_quote = sym.fee_base, sym.fee_quote
    touched_bal = eng._touched_bal
    by_account = sym.by_account
    book_orders = book.orders
    taker_recv = taker.recv_bal
    taker_recv_key = taker.recv_key
    taker_lock = taker.lock_bal
    taker_lock_key = taker.lock_key
    buy_at_limit = is_buy and not is_market

    ended = False  # expired in match by STP
    while keys:
        if taker.remaining <= 0 and not by_quote:
            break
        if by_quote and taker.quote_rem <= 0:
            break
        k = keys[-1]
        level = levels[k if not is_buy else -k]
        price = level.price
        if not is_market and (price > limit if is_buy else price < limit):
            break
        queue = level.orders
        maker = queue[0]
        while not maker.alive:
            queue.popleft()
            maker = queue[0]

        qty = maker.displayed
        if not by_quote and taker.remaining < qty:
            qty = taker.remaining
        if is_market:
            # A market taker never spends more than it locked (docs: "Walking the book").
            if is_buy:
                cap = taker.lock * SCALE // price
                cap -= cap % step
            else:
                cap = taker.lock
                if by_quote:
                    can = taker.quote_rem * SCALE // price
                    can -= can % step
                    if can < cap:
                        cap = can
            if cap < qty:
                qty = cap
            if qty <= 0:
                break
        # Self-trade prevention only where a match could really happen (qty > 0).
        if maker.account_id == acct and stp != _STP_NONE:
            if prevent(eng, sym, taker, maker, level, touched):
                ended = True
                break
            continue
        quote = price * qty // SCALE
        trade_id = sym.trade_id + 1
        sym.trade_id = trade_id

        # Book bookkeeping.
        if price not in touched:
            touched[price] = level.qty
        level.qty -= qty
        level.total -= qty
        maker.displayed -= qty
        maker.remaining -= qty
        maker.executed += qty
        maker.cum_quote += quote
        if maker.remaining == 0:
            maker.status = _S_FILLED
            maker.alive = False
            queue.popleft()
            live = level.live - 1
            level.live = live
            if live == 0:
                opp.remove_level(level)
            elif len(queue) > live << 1:
                compact(queue)  # more dead entries than live ones (see book.py)
            del book_orders[maker.order_id]
            del by_account[maker.account_id][maker.info.client_order_id]
        else:
            maker.status = _S_PARTIAL
            if maker.displayed == 0:
                # Iceberg: show the next slice at the back of the queue.
                slice_qty = (
                    maker.iceberg_qty if maker.iceberg_qty < maker.remaining else maker.remaining
                )
                maker.displayed = slice_qty
                level.qty += slice_qty
                queue.popleft()
                queue.append(maker)

        # Balances: buyer receives base, seller receives quote, fees to the fee account.
        # Fees are amounts.fee_for written out inline (ceil via negated floor division):
        # this loop runs once per fill and a call costs as much as the arithmetic.
        maker_rate = fees.get(maker.account_id, sym_rates)[0]
        maker_lock = maker.lock_bal
        maker_recv = maker.recv_bal
        key = maker.lock_key
        if key not in touched_bal:
            touched_bal[key] = (maker_lock, maker_lock[0], maker_lock[1])
        key = maker.recv_key
        if key not in touched_bal:
            touched_bal[key] = (maker_recv, maker_recv[0], maker_recv[1])
        if taker_lock_key not in touched_bal:
            touched_bal[taker_lock_key] = (taker_lock, taker_lock[0], taker_lock[1])
        if taker_recv_key not in touched_bal:
            touched_bal[taker_recv_key] = (taker_recv, taker_recv[0], taker_recv[1])
        if is_buy:
            taker_fee = -(-qty * taker_rate // SCALE)
            maker_fee = -(-quote * maker_rate // SCALE)
            spent = limit * qty // SCALE if buy_at_limit else quote
            taker.lock -= spent
            taker_lock[1] -= spent
            taker_lock[0] += spent - quote
            taker_recv[0] += qty - taker_fee
            maker.lock -= qty
            maker_lock[1] -= qty
            maker_recv[0] += quote - maker_fee
            fee_base[0] += taker_fee
            fee_quote[0] += maker_fee
            taker_fee_asset, maker_fee_asset = base, quote_asset
            buyer, seller = taker, maker
        else:
            taker_fee = -(-quote * taker_rate // SCALE)
            maker_fee = -(-qty * maker_rate // SCALE)
            taker.lock -= qty
            taker_lock[1] -= qty
            taker_recv[0] += quote - taker_fee
            maker.lock -= quote
            maker_lock[1] -= quote
            maker_recv[0] += qty - maker_fee
            fee_quote[0] += taker_fee
            fee_base[0] += maker_fee
            taker_fee_asset, maker_fee_asset = quote_asset, base
            buyer, seller = maker, taker

        taker.remaining -= qty
        taker.executed += qty
        taker.cum_quote += quote
        if by_quote:
            taker.quote_rem -= quote
            done = taker.quote_rem == 0 or _quote_spent(opp, taker, step)
        else:
            done = taker.remaining == 0
        taker.status = taker_status = _S_FILLED if done else _S_PARTIAL
        sym.last_price = price

        events.append(
            Trade(0, ts, info.symbol, trade_id, price, qty, quote, buyer.order_id,
                  seller.order_id, buyer.account_id, seller.account_id, not is_buy)
        )  # fmt: skip
        events.append(
            ExecutionReport(
                0, ts, maker.info, _TRADE, maker.status, "NONE", qty, price, quote,
                maker.executed, maker.cum_quote, maker_fee, maker_fee_asset, trade_id,
                True, True, maker.working_ts, "", -1, maker.prevented_qty,
            )
        )  # fmt: skip
        events.append(
            ExecutionReport(
                0, ts, info, _TRADE, taker_status, "NONE", qty, price, quote,
                taker.executed, taker.cum_quote, taker_fee, taker_fee_asset, trade_id,
                True, False, ts, "", -1, taker.prevented_qty,
            )
        )  # fmt: skip
        if maker.info.order_list_id >= 0:
            eng._lists.on_maker_trade(eng, sym, maker)
        if fills is not None:
            fills.append(Fill(price, qty, taker_fee, taker_fee_asset, trade_id))
        elif maker is eng._reply_order:
            # The command's new order, rested, then hit by a stop it triggered.
            fill = Fill(price, qty, maker_fee, maker_fee_asset, trade_id)
            eng._reply_fills.append(fill)

    return ended


def _fok_fillable(opp: Any, taker: Order) -> bool:
    need = taker.remaining
    limit = taker.price
    is_buy = taker.is_buy
    own_counts = taker.stp_mode == _STP_NONE
    for level in opp.levels_best_first():
        if level.price > limit if is_buy else level.price < limit:
            break
        if own_counts:
            need -= level.total
        else:
            for order in level.orders:
                if order.alive and order.account_id != taker.account_id:
                    need -= order.remaining
        if need <= 0:
            return True
    return need <= 0


def rest(eng: EngineState, sym: SymbolState, order: Order) -> None:
    book = sym.book
    if order.is_buy:
        side, touched = book.bids, eng._touched_bids
    else:
        side, touched = book.asks, eng._touched_asks
    price = order.price
    level = side.levels.get(price)
    if price not in touched:
        touched[price] = level.qty if level is not None else 0
    if level is None:
        level = side.level_for(price)
    iceberg = order.iceberg_qty
    remaining = order.remaining
    displayed = iceberg if iceberg and iceberg < remaining else remaining
    order.displayed = displayed
    level.orders.append(order)
    level.qty += displayed
    level.total += remaining
    level.live += 1
    book.orders[order.order_id] = order
    open_orders = sym.by_account.get(order.account_id)
    if open_orders is None:
        open_orders = sym.by_account[order.account_id] = {}
    open_orders[order.info.client_order_id] = order


def _expire_taker(eng: EngineState, taker: Order) -> None:
    release(eng, taker)
    taker.status = _S_EXPIRED
    eng._events.append(
        ExecutionReport(
            0, eng._ts, taker.info, _EXPIRED, _S_EXPIRED, "NONE", 0, 0, 0, taker.executed,
            taker.cum_quote, 0, "", -1, True, False, eng._ts, "", -1, taker.prevented_qty,
        )
    )  # fmt: skip


def _quote_spent(opp: BookSide, taker: Order, step: int) -> bool:
    """Whether a MARKET order by quote, having traded, is FILLED: what is left of its budget
    cannot take one more lot step at the best price left (Binance: "as close as possible to
    quoteOrderQty" without breaking LOT_SIZE). With no price left it is not: liquidity ran
    out, and the order expires."""
    keys = opp.keys
    if not keys:
        return False
    price: int = keys[-1] if opp.is_bid else -keys[-1]
    can: int = taker.quote_rem * SCALE // price
    can -= can % step
    if not taker.is_buy and taker.lock < can:
        can = taker.lock  # a SELL by quote never sells more base than it locked
    return can == 0
