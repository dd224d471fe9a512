"""The invariants of docs/engine.md, checked against an engine's live state.

Used by the tests after every command and cheap enough for the matching service to run
after restoring a snapshot, before it accepts traffic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bourse.domain.amounts import notional

if TYPE_CHECKING:
    from bourse.engine.state import EngineState


def problems(engine: EngineState) -> list[str]:
    """Every violated invariant, in words (empty when the state is sound)."""
    out: list[str] = []
    bal = engine._bal
    sums: dict[str, int] = {}
    for (acct, asset), (free, locked) in bal.accounts.items():
        if free < 0 or locked < 0:
            out.append(f"negative balance {acct} {asset}: {free}/{locked}")
        sums[asset] = sums.get(asset, 0) + free + locked
    for asset in sorted(set(sums) | set(bal.totals)):
        if sums.get(asset, 0) != bal.totals.get(asset, 0):
            out.append(f"{asset}: balances sum {sums.get(asset, 0)} != {bal.totals.get(asset, 0)}")
    # Locked = what open orders lock + what requested withdrawals hold.
    expected_locks: dict[tuple[int, str], int] = engine._reg.pending_withdrawals()
    for name, sym in engine._symbols.items():
        book = sym.book
        best_bid, best_ask = book.bids.best(), book.asks.best()
        if best_bid is not None and best_ask is not None and best_bid.price >= best_ask.price:
            out.append(f"{name}: crossed book {best_bid.price} >= {best_ask.price}")
        open_ids = set()
        for side in (book.bids, book.asks):
            if sorted(side.keys) != side.keys or len(side.keys) != len(side.levels):
                out.append(f"{name}: ladder out of order")
            for level in side.levels.values():
                live = [o for o in level.orders if o.alive]
                if not live or len(live) != level.live:
                    out.append(f"{name}: level {level.price} live count")
                if level.qty != sum(o.displayed for o in live):
                    out.append(f"{name}: level {level.price} displayed qty")
                if level.total != sum(o.remaining for o in live):
                    out.append(f"{name}: level {level.price} total qty")
                for o in live:
                    open_ids.add(o.order_id)
                    if book.orders.get(o.order_id) is not o:
                        out.append(f"{name}: order {o.order_id} not indexed")
                    if o.displayed <= 0 or o.displayed > o.remaining:
                        out.append(f"{name}: order {o.order_id} displayed {o.displayed}")
                    want = notional(o.price, o.remaining) if o.is_buy else o.remaining
                    if o.lock != want:
                        out.append(f"{name}: order {o.order_id} locks {o.lock}, needs {want}")
        if set(book.orders) != open_ids:
            out.append(f"{name}: order index holds orders not on the book")
        for o in [*book.orders.values(), *sym.stops.all_sorted()]:
            if o.remaining <= 0 or o.executed + o.prevented_qty + o.remaining != o.info.quantity:
                out.append(f"{name}: order {o.order_id} quantities")
            if sym.by_account.get(o.account_id, {}).get(o.info.client_order_id) is not o:
                out.append(f"{name}: order {o.order_id} missing from its account's open orders")
            key = o.lock_key
            expected_locks[key] = expected_locks.get(key, 0) + o.lock
        n_open = sum(len(v) for v in sym.by_account.values())
        pending = engine._lists.pending_count(name)  # order lists' orders not yet placed
        if n_open != len(book.orders) + len(sym.stops) + pending:
            out.append(f"{name}: open-order index size")
    for key, (_free, locked) in bal.accounts.items():
        if locked != expected_locks.get(key, 0):
            out.append(
                f"{key}: locked {locked} != open orders' and withdrawals' "
                f"{expected_locks.get(key, 0)}"
            )
    return out
