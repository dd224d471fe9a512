"""Canonical encoding of the engine's state, its hash, and restoring from it.

Snapshots come back from S3, so loading must be safe: the format is plain JSON (orjson)
of lists, strings and integers, never pickle. The encoding is canonical — only live state,
in a fixed order (balances and fees sorted, orders in queue order, stops by id, zero balances
left out) — so equal states give equal bytes whatever their history, and
``state_hash`` is the SHA-256 of those bytes. Amounts that can exceed 64 bits (totals)
travel as decimal strings.
"""

from __future__ import annotations

import hashlib
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import orjson

from bourse.domain.enums import (
    ContingencyType,
    OrderStatus,
    OrderType,
    Side,
    StpMode,
    SymbolStatus,
    TimeInForce,
)
from bourse.domain.events import OrderInfo
from bourse.domain.symbols import SymbolSpec
from bourse.engine.order_lists import OrderList
from bourse.engine.orders import Order
from bourse.engine.registry import Withdrawal
from bourse.engine.symbol_state import SymbolState

if TYPE_CHECKING:
    from bourse.engine.state import EngineState

# 2: accounts, deposits, withdrawals, applied admin ids, delisted, commissions;
# 3: order lists (orders carry their list id; open lists and their pending orders).
FORMAT_VERSION = 3
_READABLE_VERSIONS = (2, 3)
_SPEC_FIELDS = [f.name for f in fields(SymbolSpec)]


def encode(engine: EngineState) -> bytes:
    return orjson.dumps(_state(engine))


def state_hash(engine: EngineState, *, seq: bool = True) -> str:
    """SHA-256 of the canonical encoding; ``seq=False`` leaves out the position in the
    sequence, to compare what the engine holds across commands that hold nothing (a dry
    run takes a seq for its reply and changes nothing else)."""
    state = _state(engine)
    if not seq:
        del state["seq"]
    return hashlib.sha256(orjson.dumps(state)).hexdigest()


def _state(engine: EngineState) -> dict[str, Any]:
    bal = engine._bal
    balances = [
        [acct, asset, str(free), str(locked)]
        for (acct, asset), (free, locked) in sorted(bal.accounts.items())
        if free or locked
    ]
    return {
        "version": FORMAT_VERSION,
        "seq": engine._seq,
        "balances": balances,
        "fees": [[acct, m, t] for acct, (m, t) in sorted(bal.fees.items())],
        "totals": [[asset, str(total)] for asset, total in sorted(bal.totals.items())],
        "symbols": [_symbol_state(sym) for sym in engine._symbols.values()],
        **_registry(engine),
        **_order_lists(engine),
    }


def _order_lists(engine: EngineState) -> dict[str, Any]:
    lists = engine._lists
    return {
        "next_order_list_id": lists.next_list_id,
        "order_lists": [
            [
                lst.list_id, lst.account_id, lst.symbol, str(lst.contingency), lst.client_id,
                lst.created_ts, [[oid, cid] for oid, cid in lst.refs],
                None if lst.working is None else lst.working.order_id,
                [_order(o) for o in lst.pending], [o.order_id for o in lst.oco],
                [[oid, need] for oid, need in sorted(lst.needs.items())],
            ]
            for lst in lists.open.values()
        ],
    }  # fmt: skip


def _registry(engine: EngineState) -> dict[str, Any]:
    reg = engine._reg
    return {
        "accounts": [[acct, frozen] for acct, frozen in sorted(reg.accounts.items())],
        "next_account_id": reg.next_account_id,
        "deposits": [
            [tx, acct, asset, str(amount)]
            for tx, (acct, asset, amount) in sorted(reg.deposits.items())
        ],
        "withdrawals": [
            [wid, w.account_id, w.asset, str(w.amount), w.status]
            for wid, w in sorted(reg.withdrawals.items())
        ],
        "applied_admin": sorted(reg.applied),
        "delisted": sorted(reg.delisted),
    }


def _spec(spec: SymbolSpec) -> list[Any]:
    out: list[Any] = []
    for name in _SPEC_FIELDS:
        value = getattr(spec, name)
        out.append([str(v) for v in value] if isinstance(value, tuple) else value)
    return out


def _symbol_state(sym: SymbolState) -> dict[str, Any]:
    resting: list[list[Any]] = []
    for side in (sym.book.bids, sym.book.asks):
        for level in side.levels_best_first():
            resting.extend(_order(o) for o in level.orders if o.alive)
    return {
        "spec": _spec(sym.spec),
        "next_order_id": sym.next_order_id,
        "trade_id": sym.trade_id,
        "prevented_id": sym.prevented_id,
        "update_id": sym.update_id,
        "last_price": sym.last_price,
        "resting": resting,
        "stops": [_order(o, sym.stops.trail_extreme(o.order_id)) for o in sym.stops.all_sorted()],
    }


def _order(o: Order, trail_extreme: int = 0) -> list[Any]:
    i = o.info
    return [
        i.order_id, i.account_id, i.client_order_id, str(i.side), str(i.type),
        None if i.time_in_force is None else str(i.time_in_force), i.quantity, i.price,
        i.stop_price, i.iceberg_qty, i.quote_order_qty, str(i.stp_mode), i.created_ts,
        o.remaining, o.displayed, o.executed, o.cum_quote, o.lock, str(o.status), o.working_ts,
        o.prevented_qty, i.order_list_id,
        # A trailing stop's state, only on trailing stops (other rows keep their old shape).
        *((i.trailing_delta, i.trailing_time, trail_extreme) if i.trailing_delta else ()),
    ]  # fmt: skip


def load(engine: EngineState, data: bytes) -> None:
    """Fill a new, empty engine with the state ``data`` encodes."""
    state = orjson.loads(data)
    if not isinstance(state, dict) or state.get("version") not in _READABLE_VERSIONS:
        raise ValueError("not a Bourse engine snapshot of a known version")
    engine._seq = _int(state["seq"])
    bal = engine._bal
    for acct, asset, free, locked in state["balances"]:
        bal.entry(_int(acct), str(asset))[:] = [int(free), int(locked)]
    for acct, maker, taker in state["fees"]:
        bal.fees[_int(acct)] = (_int(maker), _int(taker))
    for asset, total in state["totals"]:
        bal.totals[str(asset)] = int(total)
    reg = engine._reg
    for acct, frozen in state["accounts"]:
        if type(frozen) is not bool:
            raise ValueError(f"expected a boolean, got {frozen!r}")
        reg.accounts[_int(acct)] = frozen
    reg.next_account_id = _int(state["next_account_id"])
    for tx, acct, asset, amount in state["deposits"]:
        reg.deposits[str(tx)] = (_int(acct), str(asset), int(amount))
    for wid, acct, asset, amount, status in state["withdrawals"]:
        reg.withdrawals[str(wid)] = Withdrawal(_int(acct), str(asset), int(amount), str(status))
    reg.applied.update(str(rid) for rid in state["applied_admin"])
    reg.delisted.update(str(name) for name in state["delisted"])
    for raw in state["symbols"]:
        spec = _decode_spec(raw["spec"])
        sym = SymbolState(spec, bal)
        engine._symbols[spec.symbol] = sym
        sym.next_order_id = _int(raw["next_order_id"])
        sym.trade_id = _int(raw["trade_id"])
        sym.prevented_id = _int(raw["prevented_id"])
        sym.update_id = _int(raw["update_id"])
        sym.last_price = _int(raw["last_price"])
        for row in raw["resting"]:
            order = _decode_order(row, sym, engine)
            (sym.book.bids if order.is_buy else sym.book.asks).add(order)
            sym.book.orders[order.order_id] = order
            sym.open_of(order.account_id)[order.info.client_order_id] = order
        for row in raw["stops"]:
            order = _decode_order(row, sym, engine)
            sym.stops.add(order, _trail_extreme(row))
            sym.open_of(order.account_id)[order.info.client_order_id] = order
    _decode_order_lists(state, engine)


def _decode_order_lists(state: dict[str, Any], engine: EngineState) -> None:
    lists = engine._lists
    lists.next_list_id = _int(state.get("next_order_list_id", 0))
    for raw in state.get("order_lists", []):
        list_id, acct, symbol, contingency, client_id, ts, leg_ids, working, pending, oco, needs = (
            raw
        )
        sym = engine._symbols[str(symbol)]
        lst = OrderList(_int(list_id), _int(acct), sym.spec.symbol, ContingencyType(contingency),
                        str(client_id), _int(ts))  # fmt: skip
        by_id: dict[int, Order] = {}
        for row in pending:
            order = _decode_order(row, sym, engine)
            sym.open_of(order.account_id)[order.info.client_order_id] = order
            lst.pending.append(order)
            by_id[order.order_id] = order
        lst.refs = tuple((_int(oid), str(cid)) for oid, cid in leg_ids)
        for oid, _cid in lst.refs:
            found = sym.book.orders.get(oid) or sym.stops.get(oid) or by_id.get(oid)
            if found is not None:  # else a leg that has ended (a working order that filled)
                by_id[oid] = found
        lst.legs = [by_id[oid] for oid, _cid in lst.refs if oid in by_id]
        lst.working = None if working is None else by_id.get(working)
        lst.oco = [by_id[oid] for oid in oco]
        lst.needs = {_int(oid): _int(need) for oid, need in needs}
        lists.open[lst.list_id] = lst
        for oid in by_id:
            lists.of_order[(lst.symbol, oid)] = lst


def _int(value: Any) -> int:
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _decode_spec(values: list[Any]) -> SymbolSpec:
    if len(values) > len(_SPEC_FIELDS):
        raise ValueError("a symbol spec with unknown fields")
    # A snapshot taken before a filter was added lacks its fields: they take the defaults.
    raw = dict(zip(_SPEC_FIELDS, values, strict=False))
    raw["status"] = SymbolStatus(raw["status"])
    raw["order_types"] = tuple(OrderType(v) for v in raw["order_types"])
    raw["default_stp"] = StpMode(raw["default_stp"])
    raw["allowed_stp_modes"] = tuple(StpMode(v) for v in raw["allowed_stp_modes"])
    spec = SymbolSpec(**raw)
    spec.validate()
    return spec


def _decode_order(row: list[Any], sym: SymbolState, engine: EngineState) -> Order:
    if len(row) not in (21, 22, 24, 25):  # format 2: 21 or 24; format 3: 22 or 25
        raise ValueError(f"an order row of {len(row)} values")
    (
        order_id, account_id, client_id, side, order_type, tif, quantity, price, stop_price,
        iceberg_qty, qoq, stp_mode, created_ts, remaining, displayed, executed, cum_quote, lock,
        status, working_ts, prevented_qty,
    ) = row[:21]  # fmt: skip
    # Format 3 rows carry the order list id at 21 (22 or 25 fields); format 2 rows have none.
    list_id, rest = (_int(row[21]), row[22:]) if len(row) in (22, 25) else (-1, row[21:])
    trailing_delta, trailing_time = (rest[0], rest[1]) if len(rest) == 3 else (0, -1)
    info = OrderInfo(
        _int(order_id), _int(account_id), sym.spec.symbol, str(client_id), Side(side),
        OrderType(order_type), None if tif is None else TimeInForce(tif), _int(quantity),
        _int(price), _int(stop_price), _int(iceberg_qty), _int(qoq), StpMode(stp_mode),
        _int(created_ts), _int(trailing_delta), _int(trailing_time), list_id,
    )  # fmt: skip
    is_buy = info.side is Side.BUY
    lock_asset, recv_asset = (sym.quote, sym.base) if is_buy else (sym.base, sym.quote)
    bal = engine._bal
    order = Order(
        info,
        is_buy,
        (info.account_id, lock_asset),
        bal.entry(info.account_id, lock_asset),
        (info.account_id, recv_asset),
        bal.entry(info.account_id, recv_asset),
    )
    order.remaining = _int(remaining)
    order.displayed = _int(displayed)
    order.executed = _int(executed)
    order.cum_quote = _int(cum_quote)
    order.lock = _int(lock)
    order.status = OrderStatus(status)
    order.working_ts = _int(working_ts)
    order.prevented_qty = _int(prevented_qty)
    return order


def _trail_extreme(row: list[Any]) -> int:
    """A stop row's tracking extreme: the last of its 24 or 25 values (trailing stops only)."""
    return _int(row[-1]) if len(row) in (24, 25) else 0
