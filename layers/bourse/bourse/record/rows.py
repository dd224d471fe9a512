"""Events -> rows of the record's tables (migrations/0002_record.sql, 0005_admin_funding.sql,
0007_order_amendments.sql), without I/O.

``map_events`` takes events in seq order that the record does not hold yet (the writer drops
those at or below its high-water mark first) and returns every row they add or change. Row
tuples follow the ``*_COLUMNS`` orders below, which the writer uses verbatim for COPY and
upserts, so the table shape is written down once.

Current-state rows (orders, balances, funding, accounts) keep only the newest state per key
within the batch: the table needs the end state, and one row per key is what lets an upsert
touch each row once.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from bourse.domain.enums import (
    ContingencyType,
    ExecutionType,
    ListOrderStatus,
    ListStatusType,
    OrderStatus,
    OrderType,
    Side,
    StpMode,
    TimeInForce,
)
from bourse.domain.events import (
    AccountBalances,
    AccountUpdated,
    AdminAction,
    Event,
    ExecutionReport,
    FundingUpdate,
    ListStatus,
    OrderAmended,
    SymbolUpdated,
    Trade,
)
from bourse.record.intervals import FIXED_MS, INTERVALS, bucket

FEE_ACCOUNT = 0
EXTERNAL_ACCOUNT = -1  # the world outside the exchange: counterpart of deposits and withdrawals

ORDER_COLUMNS = (
    "symbol", "order_id", "account_id", "client_order_id", "side", "type", "time_in_force",
    "quantity", "price", "stop_price", "iceberg_qty", "quote_order_qty", "stp_mode", "status",
    "executed_qty", "cum_quote", "prevented_qty", "is_working", "working_ts", "created_ts",
    "update_ts", "last_seq", "trailing_delta", "trailing_time", "order_list_id",
)  # fmt: skip
ORDER_EVENT_COLUMNS = (
    "seq", "ts", "symbol", "order_id", "account_id", "exec_type", "status", "reject_reason",
    "last_qty", "last_price", "last_quote", "cum_qty", "cum_quote", "commission",
    "commission_asset", "trade_id", "is_maker", "is_working", "working_ts",
    "cancel_client_order_id", "prevented_match_id", "prevented_qty", "last_prevented_qty",
    "counter_order_id",
)  # fmt: skip
ORDER_LIST_COLUMNS = (
    "order_list_id", "account_id", "symbol", "contingency_type", "list_status_type",
    "list_order_status", "list_client_order_id", "transaction_time", "orders", "update_ts",
    "last_seq",
)  # fmt: skip
AMENDMENT_COLUMNS = (
    "symbol", "order_id", "execution_id", "account_id", "orig_client_order_id",
    "new_client_order_id", "orig_qty", "new_qty", "ts", "seq",
)  # fmt: skip
TRADE_COLUMNS = (
    "symbol", "trade_id", "seq", "ts", "price", "qty", "quote_qty", "buyer_order_id",
    "seller_order_id", "buyer_account_id", "seller_account_id", "is_buyer_maker",
)  # fmt: skip
ACCOUNT_TRADE_COLUMNS = (
    "account_id", "symbol", "trade_id", "is_buyer", "order_id", "is_maker", "price", "qty",
    "quote_qty", "commission", "commission_asset", "ts", "seq",
)  # fmt: skip
LEDGER_COLUMNS = (
    "seq", "leg", "kind", "account_id", "asset", "amount", "symbol", "trade_id", "ts",
)  # fmt: skip
SYMBOL_COLUMNS = (
    "symbol", "base_asset", "quote_asset", "status", "base_asset_precision",
    "quote_asset_precision",
)  # fmt: skip
BALANCE_COLUMNS = ("account_id", "asset", "free", "locked", "last_seq", "update_ts")
ADMIN_LOG_COLUMNS = ("seq", "ts", "request_id", "command", "principal", "code", "msg", "detail")
FUNDING_COLUMNS = (
    "funding_id", "kind", "account_id", "asset", "amount", "status", "tx_id", "requested_seq",
    "updated_seq", "requested_ts", "updated_ts",
)  # fmt: skip
ACCOUNT_COLUMNS = ("account_id", "status", "last_seq", "update_ts")
KLINE_COLUMNS = (
    "symbol", "interval", "open_time", "close_time", "open", "high", "low", "close", "volume",
    "quote_volume", "trades", "taker_buy_volume", "taker_buy_quote", "first_trade_id",
    "last_trade_id",
)  # fmt: skip
AGG_TRADE_COLUMNS = (
    "symbol", "agg_id", "last_trade_id", "taker_order_id", "price", "qty", "ts",
    "is_buyer_maker",
)  # fmt: skip

Row = tuple[object, ...]

# The admin code of a refused admin command (unsigned, badly signed, unknown key, replayed).
UNAUTHORIZED = -1002
# The funding steps that move money across the exchange's edge; the others (REQUESTED, FAILED,
# CANCELED) move it between free and locked inside one account.
LEDGER_FUNDING = {("DEPOSIT", "CREDITED"): "DEPOSIT", ("WITHDRAWAL", "COMPLETED"): "WITHDRAWAL"}

# Enum member -> its string. ``member.value`` goes through the enum descriptor machinery,
# which at tens of thousands of events per batch costs more than the dict lookup.
_TEXT: dict[object, str | None] = {
    m: m.value
    for e in (
        ExecutionType,
        OrderStatus,
        OrderType,
        Side,
        StpMode,
        TimeInForce,
        ContingencyType,
        ListStatusType,
        ListOrderStatus,
    )
    for m in e
}
_TEXT[None] = None


@dataclass(slots=True)
class Kline:
    """A kline's aggregate over some trades (a batch's part of one bucket)."""

    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    trades: int
    taker_buy_volume: int
    taker_buy_quote: int
    first_trade_id: int
    last_trade_id: int

    def merge(self, later: Kline) -> None:
        """Fold in ``later`` (trades after this kline's, same bucket)."""
        self.high = max(self.high, later.high)
        self.low = min(self.low, later.low)
        self.close = later.close
        self.volume += later.volume
        self.quote_volume += later.quote_volume
        self.trades += later.trades
        self.taker_buy_volume += later.taker_buy_volume
        self.taker_buy_quote += later.taker_buy_quote
        self.last_trade_id = later.last_trade_id

    def row(self) -> Row:
        return (
            self.symbol, self.interval, self.open_time, self.close_time, self.open, self.high,
            self.low, self.close, self.volume, self.quote_volume, self.trades,
            self.taker_buy_volume, self.taker_buy_quote, self.first_trade_id,
            self.last_trade_id,
        )  # fmt: skip


@dataclass(slots=True)
class AggTrade:
    symbol: str
    agg_id: int  # first trade id of the run
    last_trade_id: int
    taker_order_id: int
    price: int
    qty: int
    ts: int
    is_buyer_maker: bool

    def row(self) -> Row:
        return (
            self.symbol, self.agg_id, self.last_trade_id, self.taker_order_id, self.price,
            self.qty, self.ts, self.is_buyer_maker,
        )  # fmt: skip


@dataclass(slots=True)
class Fill:
    """One side of one trade, for the trade-fills notification and settlement."""

    seq: int
    ts: int
    symbol: str
    trade_id: int
    order_id: int
    account_id: int
    side: str
    is_maker: bool
    price: int
    qty: int
    quote_qty: int
    commission: int
    commission_asset: str

    @property
    def is_buyer(self) -> bool:
        return self.side == "BUY"


@dataclass(slots=True)
class Rows:
    first_seq: int = 0
    last_seq: int = 0
    events: int = 0
    # seq ranges missing inside the mapped events (first, last), for record_gaps
    gaps: list[tuple[int, int]] = field(default_factory=list)
    orders: dict[tuple[str, int], Row] = field(default_factory=dict)
    order_events: list[Row] = field(default_factory=list)
    amendments: list[Row] = field(default_factory=list)
    order_lists: dict[int, Row] = field(default_factory=dict)  # newest per list id
    trades: list[Row] = field(default_factory=list)
    account_trades: list[Row] = field(default_factory=list)
    ledger: list[Row] = field(default_factory=list)
    balances: dict[tuple[int, str], Row] = field(default_factory=dict)
    # Commissions received by the fee account, per asset: its balance is their running sum
    # (the engine sends no AccountBalances for it).
    fee_income: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # amount, seq, ts
    klines: dict[tuple[str, str, int], Kline] = field(default_factory=dict)
    agg_trades: list[AggTrade] = field(default_factory=list)
    symbols: dict[str, Row] = field(default_factory=dict)
    admin_log: list[Row] = field(default_factory=list)
    funding: dict[tuple[str, str], Row] = field(default_factory=dict)
    accounts: dict[int, Row] = field(default_factory=dict)


# What PostgreSQL refuses in text and jsonb: NUL, and (jsonb) the escape of NUL or of a UTF-16
# surrogate. A forged admin command's claims reach admin_log as they were written, and one
# refused row would fail its batch on every delivery: such text is scrubbed first.
_JSONB_UNSAFE = re.compile(r"\\u(0000|[dD][89a-fA-F])|\x00")


def scrub(text: str) -> str:
    """``text`` storable in PostgreSQL: NUL and lone surrogates become U+FFFD / '?'."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _scrub_json(value: object) -> object:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrub_json(v) for v in value]
    if isinstance(value, dict):
        return {scrub(str(k)): _scrub_json(v) for k, v in value.items()}
    return value


def detail_json(detail: str) -> str | None:
    """AdminAction.detail for the jsonb column: None when empty, as is when it is JSON
    PostgreSQL takes, else scrubbed (text that is not JSON is kept as a JSON string): the audit
    log keeps whatever a forged command claimed, and one odd detail must not fail the batch."""
    if not detail:
        return None
    value: object
    try:
        value = json.loads(detail)
    except ValueError:
        value = detail
    else:
        if _JSONB_UNSAFE.search(detail) is None and scrub(detail) == detail:
            return detail
    return json.dumps(_scrub_json(value), separators=(",", ":"), ensure_ascii=False)


def _admin_rows(ev: AdminAction, rows: Rows) -> None:
    rows.admin_log.append(
        (ev.seq, ev.ts, scrub(ev.request_id), scrub(ev.command), scrub(ev.principal), ev.code,
         scrub(ev.msg), detail_json(ev.detail))
    )  # fmt: skip


def _funding_rows(ev: FundingUpdate, rows: Rows) -> None:
    kind, status = ev.kind, ev.status
    key = (ev.funding_id, kind)
    earlier = rows.funding.get(key)
    # The first step of the batch (or of all time, kept by the merge) is the request.
    requested_seq, requested_ts = (ev.seq, ev.ts) if earlier is None else (earlier[7], earlier[9])
    rows.funding[key] = (
        ev.funding_id, kind, ev.account_id, ev.asset, ev.amount, status, ev.tx_id,
        requested_seq, ev.seq, requested_ts, ev.ts,
    )  # fmt: skip
    ledger_kind = LEDGER_FUNDING.get((kind, status))
    if ledger_kind is not None:
        # Money in: EXTERNAL -a, account +a; money out (on completion, when it leaves): the
        # reverse. So an account's ledger sum stays free + locked at every step.
        delta = ev.amount if ledger_kind == "DEPOSIT" else -ev.amount
        a, asset = ev.account_id, ev.asset
        rows.ledger.append((ev.seq, 0, ledger_kind, EXTERNAL_ACCOUNT, asset, -delta, None, None,
                            ev.ts))  # fmt: skip
        rows.ledger.append((ev.seq, 1, ledger_kind, a, asset, delta, None, None, ev.ts))


def _order_rows(ev: ExecutionReport, rows: Rows) -> None:
    o = ev.order
    rows.orders[(o.symbol, o.order_id)] = (
        o.symbol, o.order_id, o.account_id, o.client_order_id, _TEXT[o.side], _TEXT[o.type],
        _TEXT[o.time_in_force], o.quantity, o.price,
        o.stop_price, o.iceberg_qty, o.quote_order_qty, _TEXT[o.stp_mode], _TEXT[ev.status],
        ev.cum_qty, ev.cum_quote, ev.prevented_qty, ev.is_working, ev.working_ts,
        o.created_ts, ev.ts, ev.seq, o.trailing_delta, o.trailing_time, o.order_list_id,
    )  # fmt: skip
    rows.order_events.append(
        (
            ev.seq,
            ev.ts,
            o.symbol,
            o.order_id,
            o.account_id,
            _TEXT[ev.exec_type],
            _TEXT[ev.status],
            ev.reject_reason,
            ev.last_qty,
            ev.last_price,
            ev.last_quote,
            ev.cum_qty,
            ev.cum_quote,
            ev.commission,
            ev.commission_asset,
            ev.trade_id,
            ev.is_maker,
            ev.is_working,
            ev.working_ts,
            ev.cancel_client_order_id,
            ev.prevented_match_id,
            ev.prevented_qty,
            ev.last_prevented_qty,
            ev.counter_order_id,
        )
    )
    if ev.exec_type is not ExecutionType.TRADE:
        return
    is_buyer = o.side is Side.BUY
    rows.account_trades.append(
        (
            o.account_id,
            o.symbol,
            ev.trade_id,
            is_buyer,
            o.order_id,
            ev.is_maker,
            ev.last_price,
            ev.last_qty,
            ev.last_quote,
            ev.commission,
            ev.commission_asset,
            ev.ts,
            ev.seq,
        )
    )
    if ev.commission > 0:
        asset = ev.commission_asset
        rows.ledger.append(
            (ev.seq, 0, "FEE", o.account_id, asset, -ev.commission, o.symbol, ev.trade_id, ev.ts)
        )
        rows.ledger.append(
            (ev.seq, 1, "FEE", FEE_ACCOUNT, asset, ev.commission, o.symbol, ev.trade_id, ev.ts)
        )
        total, _, _ = rows.fee_income.get(asset, (0, 0, 0))
        rows.fee_income[asset] = (total + ev.commission, ev.seq, ev.ts)


def _trade_rows(ev: Trade, rows: Rows, base: str, quote: str) -> None:
    rows.trades.append(
        (
            ev.symbol,
            ev.trade_id,
            ev.seq,
            ev.ts,
            ev.price,
            ev.qty,
            ev.quote_qty,
            ev.buyer_order_id,
            ev.seller_order_id,
            ev.buyer_account_id,
            ev.seller_account_id,
            ev.is_buyer_maker,
        )
    )
    s, t = ev.symbol, ev.trade_id
    rows.ledger.append((ev.seq, 0, "TRADE", ev.seller_account_id, base, -ev.qty, s, t, ev.ts))
    rows.ledger.append((ev.seq, 1, "TRADE", ev.buyer_account_id, base, ev.qty, s, t, ev.ts))
    rows.ledger.append((ev.seq, 2, "TRADE", ev.buyer_account_id, quote, -ev.quote_qty, s, t, ev.ts))
    rows.ledger.append((ev.seq, 3, "TRADE", ev.seller_account_id, quote, ev.quote_qty, s, t, ev.ts))
    _kline_1s(ev, rows)
    _agg_trade(ev, rows)


def _kline_1s(ev: Trade, rows: Rows) -> None:
    open_time = ev.ts - ev.ts % 1000
    taker_buy = not ev.is_buyer_maker
    k = Kline(
        ev.symbol, "1s", open_time, open_time + 999, ev.price, ev.price, ev.price, ev.price,
        ev.qty, ev.quote_qty, 1, ev.qty if taker_buy else 0, ev.quote_qty if taker_buy else 0,
        ev.trade_id, ev.trade_id,
    )  # fmt: skip
    key = (ev.symbol, "1s", open_time)
    current = rows.klines.get(key)
    if current is None:
        rows.klines[key] = k
    else:
        current.merge(k)


def _agg_trade(ev: Trade, rows: Rows) -> None:
    taker = ev.seller_order_id if ev.is_buyer_maker else ev.buyer_order_id
    aggs = rows.agg_trades
    last = aggs[-1] if aggs else None
    if (
        last is not None
        and last.symbol == ev.symbol
        and last.last_trade_id == ev.trade_id - 1
        and last.taker_order_id == taker
        and last.price == ev.price
    ):
        last.last_trade_id = ev.trade_id
        last.qty += ev.qty
        return
    aggs.append(
        AggTrade(ev.symbol, ev.trade_id, ev.trade_id, taker, ev.price, ev.qty, ev.ts,
                 ev.is_buyer_maker)
    )  # fmt: skip


def _roll_up_klines(rows: Rows) -> None:
    """Every other interval from the batch's 1s klines (trades within a second are already
    folded, so this costs per second of trading, not per trade)."""
    seconds = sorted(rows.klines.values(), key=lambda k: k.first_trade_id)
    for k in seconds:
        for interval in INTERVALS:
            if interval == "1s":
                continue
            open_time, close_time = bucket(interval, k.open_time)
            key = (k.symbol, interval, open_time)
            current = rows.klines.get(key)
            if current is None:
                rows.klines[key] = Kline(
                    k.symbol, interval, open_time, close_time, k.open, k.high, k.low, k.close,
                    k.volume, k.quote_volume, k.trades, k.taker_buy_volume, k.taker_buy_quote,
                    k.first_trade_id, k.last_trade_id,
                )  # fmt: skip
            else:
                current.merge(k)


def map_events(
    events: Iterable[Event],
    assets: dict[str, tuple[str, str]],
    start_after: int = 0,
    seqs: Iterable[int] | None = None,
) -> Rows:
    """The rows ``events`` (ascending seq, all above ``start_after``) add to the record.

    ``assets`` maps each traded symbol to its (base, quote) assets: a Trade event names only
    the symbol, and the ledger needs the assets. SymbolUpdated events add to it (in place).
    ``seqs``, when given, are all the seqs being applied (ascending, above ``start_after``):
    those of ``events`` and of events the record keeps nothing of, which the caller need not
    decode (``bourse.record.delivery``); by default, the events' own. A seq missing between
    ``start_after`` and the last one is reported in ``rows.gaps``.
    """
    rows = Rows()
    events = list(events)
    applied = [ev.seq for ev in events] if seqs is None else list(seqs)
    expected = start_after + 1
    for seq in applied:
        if seq != expected:
            if seq < expected:
                raise ValueError(f"events out of order: seq {seq} after {expected - 1}")
            rows.gaps.append((expected, seq - 1))
        expected = seq + 1
    rows.events = len(applied)
    rows.first_seq = applied[0] if applied else 0
    rows.last_seq = expected - 1
    if seqs is not None:
        ordered = [ev.seq for ev in events]
        if any(a >= b for a, b in itertools.pairwise(ordered)):
            raise ValueError("events out of order")
    for ev in events:
        # Most frequent first: execution reports and balances are over half of all events.
        if isinstance(ev, ExecutionReport):
            _order_rows(ev, rows)
        elif isinstance(ev, AccountBalances):
            seq, ts, account = ev.seq, ev.ts, ev.account_id
            balances = rows.balances
            for asset, free, locked in ev.balances:
                balances[(account, asset)] = (account, asset, free, locked, seq, ts)
        elif isinstance(ev, Trade):
            base, quote = assets[ev.symbol]
            _trade_rows(ev, rows, base, quote)
        elif isinstance(ev, ListStatus):
            lst = ev.order_list
            orders = json.dumps([[oid, cid] for oid, cid in lst.orders])
            rows.order_lists[lst.order_list_id] = (
                lst.order_list_id, lst.account_id, lst.symbol, _TEXT[lst.contingency_type],
                _TEXT[lst.list_status_type], _TEXT[lst.list_order_status],
                lst.list_client_order_id, lst.transaction_ts, orders, ev.ts, ev.seq,
            )  # fmt: skip
        elif isinstance(ev, OrderAmended):
            rows.amendments.append(
                (ev.symbol, ev.order_id, ev.execution_id, ev.account_id,
                 ev.orig_client_order_id, ev.new_client_order_id, ev.orig_qty, ev.new_qty,
                 ev.ts, ev.seq)
            )  # fmt: skip
        elif isinstance(ev, FundingUpdate):
            _funding_rows(ev, rows)
        elif isinstance(ev, AdminAction):
            _admin_rows(ev, rows)
        elif isinstance(ev, AccountUpdated):
            rows.accounts[ev.account_id] = (ev.account_id, ev.status, ev.seq, ev.ts)
        elif isinstance(ev, SymbolUpdated):
            spec = ev.spec
            # Later trades of this batch need the assets before the caller's table has them.
            assets[spec.symbol] = (spec.base_asset, spec.quote_asset)
            rows.symbols[spec.symbol] = (
                spec.symbol, spec.base_asset, spec.quote_asset, spec.status.value,
                spec.base_asset_precision, spec.quote_precision,
            )  # fmt: skip
        # BalanceUpdate: the free side of a funding step; the ledger is written from the
        # FundingUpdate (a withdrawal leaves the exchange when it completes, not when its
        # amount is locked). AccountFeesUpdated, DepthUpdate, PreventedMatch, Reply: nothing
        # in the record (the live view and the replies are the matching service's business).
    _roll_up_klines(rows)
    return rows


def fills_of(events: Iterable[Event]) -> list[Fill]:
    """Every fill (one side of one trade) among ``events``, in seq order."""
    out: list[Fill] = []
    for ev in events:
        if isinstance(ev, ExecutionReport) and ev.exec_type is ExecutionType.TRADE:
            o = ev.order
            out.append(
                Fill(
                    ev.seq,
                    ev.ts,
                    o.symbol,
                    ev.trade_id,
                    o.order_id,
                    o.account_id,
                    o.side.value,
                    ev.is_maker,
                    ev.last_price,
                    ev.last_qty,
                    ev.last_quote,
                    ev.commission,
                    ev.commission_asset,
                )
            )
    return out


def funding_of(events: Iterable[Event]) -> list[FundingUpdate]:
    """Every funding step among ``events``, in seq order (for the funding topic)."""
    return [ev for ev in events if isinstance(ev, FundingUpdate)]


def refused_admin_of(events: Iterable[Event]) -> list[AdminAction]:
    """Every admin command refused as unauthorized (-1002) among ``events`` (for alerts)."""
    return [ev for ev in events if isinstance(ev, AdminAction) and ev.code == UNAUTHORIZED]


__all__ = [
    "FIXED_MS",
    "INTERVALS",
    "Rows",
    "fills_of",
    "funding_of",
    "map_events",
    "refused_admin_of",
]
