"""A dry run: what an order would do if it were placed now, changing nothing (docs/engine.md,
"Dry runs").

The order runs through the same ``placing`` code as a real one, on a shadow engine: its
symbol is a copy built as a snapshot is restored (``symbol_copy``), every other symbol and the
registry are the engine's own (a new order reads them, never writes them), and so are the
balances, because an order holds direct references to the balances it locks and receives.
The shadow records the first value of every balance it touches (as every command does, for
its ``AccountBalances``), and the fee account's two balances of the symbol are kept beside
them; after the run those values are put back. So the prediction is exact as of this point of
the sequence (the same fills, ids, fees, triggered stops and prevented matches the order would
get as the next command) and the engine's state is what it was: only the dry run's own reply
takes a seq.

The cost is the copy: linear in the symbol's open orders (docs/benchmarks.md, "Dry runs").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from bourse.domain.commands import DryRunOrder
from bourse.domain.events import PreventedMatch
from bourse.engine import placing
from bourse.engine.state import EngineState
from bourse.engine.symbol_copy import copy_lists, copy_open_orders, copy_symbol

if TYPE_CHECKING:
    from bourse.engine.state import Result

_json = msgspec.json.Encoder()


def shadow_of(eng: EngineState, symbol: str) -> EngineState:
    """An engine that shares ``eng``'s balances, registry and other symbols, with its own
    copy of ``symbol`` (when ``eng`` has it) and of that symbol's order lists."""
    shadow = EngineState()
    shadow._seq = eng._seq
    shadow._bal = eng._bal
    shadow._reg = eng._reg
    shadow._symbols = dict(eng._symbols)
    sym = eng._symbols.get(symbol)
    if sym is not None:
        copy, orders = copy_symbol(sym, eng._bal)
        shadow._lists = copy_lists(eng._lists, symbol, orders)
        copy_open_orders(sym, copy, orders)
        shadow._symbols[symbol] = copy
    return shadow


def on_dry_run(eng: EngineState, cmd: DryRunOrder) -> Result:
    order = cmd.order
    shadow = shadow_of(eng, order.symbol)
    shadow._ts = eng._ts
    # Commissions are credited to the fee account without a touch record (its balances are
    # never reported): its two balances of the symbol's assets are kept here instead.
    sym = shadow._symbols.get(order.symbol)
    fees = [(e, e[0], e[1]) for e in (sym.fee_base, sym.fee_quote)] if sym is not None else []
    try:
        code, msg, parts = placing.on_new_order(shadow, order)
        eng._detail = _detail(eng, shadow, order.account_id, order.symbol)
    finally:
        for entry, free, locked in [*shadow._touched_bal.values(), *fees]:
            entry[0] = free
            entry[1] = locked
    return code, msg, parts


def _detail(eng: EngineState, shadow: EngineState, account_id: int, symbol: str) -> str:
    """The reply's detail: the seq the prediction is as of, the self-trades STP would
    prevent, and the account's balances of the symbol's assets afterwards."""
    prevented: list[dict[str, Any]] = []
    for event in shadow._events:
        if type(event) is PreventedMatch:
            prevented.append(
                {
                    "preventedMatchId": event.prevented_match_id,
                    "takerOrderId": event.taker_order_id,
                    "makerOrderId": event.maker_order_id,
                    "price": event.price,
                    "makerPreventedQuantity": event.maker_prevented_qty,
                    "takerPreventedQuantity": event.taker_prevented_qty,
                    "selfTradePreventionMode": str(event.stp_mode),
                }
            )
    sym = shadow._symbols[symbol]
    bal = eng._bal
    balances = [
        {"asset": asset, "free": entry[0], "locked": entry[1]}
        for asset in (sym.base, sym.quote)
        for entry in (bal.accounts.get((account_id, asset), [0, 0]),)
    ]
    return _json.encode(
        {
            "asOfSeq": eng._seq,
            "preventedMatches": prevented,
            "balancesAfter": balances,
        }
    ).decode()
