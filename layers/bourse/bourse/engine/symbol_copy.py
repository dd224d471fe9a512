"""A copy of one symbol's live state and of its open order lists, on the same balances: what
a dry run works on (``bourse.engine.dry_run``).

It is built the way a snapshot is restored (``snapshot.load``: the live resting orders in
queue order, every stop with its tracking extreme, then the order lists over those orders),
from the objects themselves instead of their encoding, which costs about a fifth as much. The
copy's orders hold the engine's own balance lists, so whoever runs on the copy must put back
the balances it touched.
"""

from __future__ import annotations

from bourse.engine.balances import Balances
from bourse.engine.order_lists import OrderList, OrderLists
from bourse.engine.orders import Order
from bourse.engine.symbol_state import SymbolState


def copy_symbol(sym: SymbolState, bal: Balances) -> tuple[SymbolState, dict[int, Order]]:
    """The copy, and its orders by id (resting and stops)."""
    new = SymbolState(sym.spec, bal)
    new.next_order_id = sym.next_order_id
    new.trade_id = sym.trade_id
    new.prevented_id = sym.prevented_id
    new.update_id = sym.update_id
    new.last_price = sym.last_price
    copies: dict[int, Order] = {}
    book = new.book
    for side, new_side in ((sym.book.bids, book.bids), (sym.book.asks, book.asks)):
        for level in side.levels_best_first():
            for order in level.orders:
                if order.alive:
                    clone = copies[order.order_id] = order.copy()
                    new_side.add(clone)
                    book.orders[clone.order_id] = clone
    stops = sym.stops
    for order in stops.all_sorted():
        clone = copies[order.order_id] = order.copy()
        new.stops.add(clone, stops.trail_extreme(order.order_id))
    return new, copies


def copy_lists(lists: OrderLists, symbol: str, copies: dict[int, Order]) -> OrderLists:
    """``symbol``'s open order lists over ``copies``; pending legs (in no book yet) are
    copied here and added to ``copies``."""
    new = OrderLists()
    new.next_list_id = lists.next_list_id
    for lst in lists.open.values():
        if lst.symbol != symbol:
            continue
        clone = OrderList(lst.list_id, lst.account_id, lst.symbol, lst.contingency,
                          lst.client_id, lst.created_ts)  # fmt: skip
        for order in lst.pending:
            copies[order.order_id] = order.copy()
        clone.pending = [copies[o.order_id] for o in lst.pending]
        clone.refs = lst.refs
        clone.legs = [copies[o.order_id] for o in lst.legs if o.order_id in copies]
        clone.working = None if lst.working is None else copies.get(lst.working.order_id)
        clone.oco = [copies[o.order_id] for o in lst.oco]
        clone.needs = dict(lst.needs)
        new.open[clone.list_id] = clone
        for order_id, _client_id in lst.refs:
            if order_id in copies:
                new.of_order[(symbol, order_id)] = clone
    return new


def copy_open_orders(sym: SymbolState, new: SymbolState, copies: dict[int, Order]) -> None:
    """``new``'s open orders by account and client id, as ``sym`` has them."""
    for account_id, orders in sym.by_account.items():
        if orders:
            new.by_account[account_id] = {
                client_id: copies[order.order_id] for client_id, order in orders.items()
            }
