"""What one command leaves behind besides its own events.

While a command runs, the first-seen value of every book level and balance it touches is
recorded (``touch`` here, the level maps inline on the hot paths); at the end of the command
``emit_depth`` and ``emit_balances`` turn those records into its one ``DepthUpdate`` and its
``AccountBalances``, so that a level or balance changed and changed back is not reported.
Releasing a lock goes through here because it must record the balance it touches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bourse.domain.commands import FEE_ACCOUNT
from bourse.domain.events import AccountBalances, DepthUpdate, Fill, OrderResult
from bourse.engine.orders import Order
from bourse.engine.symbol_state import SymbolState

if TYPE_CHECKING:
    from bourse.engine.state import EngineState


def touch(eng: EngineState, entry: list[int], account_id: int, asset: str) -> None:
    key = (account_id, asset)
    if key not in eng._touched_bal:
        eng._touched_bal[key] = (entry, entry[0], entry[1])


def release_part(eng: EngineState, order: Order, amount: int) -> None:
    """Release ``amount`` of what ``order`` holds locked (never more than it holds)."""
    if amount > order.lock:
        amount = order.lock
    if amount:
        entry = order.lock_bal
        touch(eng, entry, order.account_id, order.lock_key[1])
        entry[0] += amount
        entry[1] -= amount
        order.lock -= amount


def release(eng: EngineState, order: Order) -> None:
    amount = order.lock
    if amount:
        entry = order.lock_bal
        touch(eng, entry, order.account_id, order.lock_key[1])
        entry[0] += amount
        entry[1] -= amount
        order.lock = 0


def emit_depth(eng: EngineState, sym: SymbolState) -> None:
    tb, ta = eng._touched_bids, eng._touched_asks
    if not tb and not ta:
        return
    book = sym.book
    bids = _changed_levels(tb, book.bids.levels, reverse=True) if tb else ()
    asks = _changed_levels(ta, book.asks.levels, reverse=False) if ta else ()
    tb.clear()
    ta.clear()
    n = len(bids) + len(asks)
    if n:
        first = sym.update_id + 1
        sym.update_id += n
        eng._events.append(
            DepthUpdate(0, eng._ts, sym.spec.symbol, first, sym.update_id, bids, asks)
        )


def emit_balances(eng: EngineState) -> None:
    touched = eng._touched_bal
    ts = eng._ts
    if len(touched) == 1:
        ((key, (entry, free, locked)),) = touched.items()
        touched.clear()
        if key[0] != FEE_ACCOUNT and (entry[0] != free or entry[1] != locked):
            eng._events.append(AccountBalances(0, ts, key[0], ((key[1], entry[0], entry[1]),)))
        return
    changed = sorted(
        [
            (key, entry)
            for key, (entry, free, locked) in touched.items()
            if key[0] != FEE_ACCOUNT and (entry[0] != free or entry[1] != locked)
        ]
    )
    touched.clear()
    events = eng._events
    rows: list[tuple[str, int, int]] = []
    account_id = -1
    for (acct, asset), entry in changed:
        if acct != account_id:
            if rows:
                events.append(AccountBalances(0, ts, account_id, tuple(rows)))
            rows = []
            account_id = acct
        rows.append((asset, entry[0], entry[1]))
    if rows:
        events.append(AccountBalances(0, ts, account_id, tuple(rows)))


def _changed_levels(
    touched: dict[int, int], levels: dict[int, Any], *, reverse: bool
) -> tuple[tuple[int, int], ...]:
    if len(touched) == 1:
        ((price, before),) = touched.items()
        level = levels.get(price)
        qty = level.qty if level is not None else 0
        return ((price, qty),) if qty != before else ()
    out = []
    for price in sorted(touched, reverse=reverse):
        level = levels.get(price)
        qty = level.qty if level is not None else 0
        if qty != touched[price]:
            out.append((price, qty))
    return tuple(out)


def order_id_of(order: Order) -> int:
    return order.order_id


def order_result(order: Order, fills: tuple[Fill, ...], cancel_client_id: str = "") -> OrderResult:
    return OrderResult(
        order.info,
        order.status,
        order.executed,
        order.cum_quote,
        order.working_ts,
        fills,
        cancel_client_id,
    )
