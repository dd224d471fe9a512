"""Events: the engine's only output. See docs/engine.md for when each is emitted and in
which order; that order is part of the contract (two engines must produce the same stream).

Every event carries ``seq`` (global, gap-free, starting at 1) and ``ts`` (the command's time).
Events and the values inside them are ``msgspec.Struct`` classes: the engine builds millions
of them, and a Struct is built in C about twice as fast as a slotted dataclass (measured:
``make bench-engine`` went up by about a fifth), compares by value, and is what the event
codec encodes without intermediate objects. ``gc=False`` because an event only refers to
immutable values and other events' parts, never back to itself, so it cannot be in a cycle.
They are mutable only so that the engine can stamp ``seq`` last; treat them as immutable.
"""

from __future__ import annotations

import msgspec

from bourse.domain.enums import (
    ContingencyType,
    ExecutionType,
    ListOrderStatus,
    ListStatusType,
    OrderStatus,
    OrderType,
    Outcome,
    Side,
    StpMode,
    TimeInForce,
)
from bourse.domain.symbols import SymbolSpec


class OrderInfo(msgspec.Struct, gc=False):
    """What an order is, fixed when it is accepted (and shared by its events; see below).

    ``type`` is the order's type as placed (a triggered STOP_LOSS_LIMIT stays STOP_LOSS_LIMIT,
    as on Binance). ``stp_mode`` is resolved (never None). ``time_in_force`` is None for
    MARKET, STOP_LOSS, TAKE_PROFIT and LIMIT_MAKER (Binance shows "GTC" for the latter two:
    the API layer formats that).
    """

    order_id: int
    account_id: int
    symbol: str
    client_order_id: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce | None
    quantity: int  # 0 for a MARKET order by quote_order_qty
    price: int  # 0 when the type has none
    stop_price: int  # 0 when none
    iceberg_qty: int  # 0 when none
    quote_order_qty: int  # 0 when none
    stp_mode: StpMode
    created_ts: int
    # A trailing stop's trailingDelta in BIPS (0: not trailing) and the time it started
    # tracking prices (-1 until then). The engine replaces a trailing stop's OrderInfo once,
    # when it starts tracking; every other field stays as accepted.
    trailing_delta: int = 0
    trailing_time: int = -1
    order_list_id: int = -1  # Binance's orderListId: -1 unless the order is in an order list


class ExecutionReport(msgspec.Struct, gc=False):
    """One change of one order: Binance's executionReport."""

    seq: int
    ts: int
    order: OrderInfo
    exec_type: ExecutionType
    status: OrderStatus
    reject_reason: str  # "NONE" unless the order ends for a reason Binance names
    last_qty: int
    last_price: int
    last_quote: int
    cum_qty: int
    cum_quote: int
    commission: int
    commission_asset: str  # "" when no fill
    trade_id: int  # -1 when not a trade
    is_working: bool  # on the book (or matching) as opposed to a stop not yet triggered
    is_maker: bool
    working_ts: int  # -1 while not working
    cancel_client_order_id: str = ""  # the cancel request's client id, for CANCELED
    prevented_match_id: int = -1
    prevented_qty: int = 0  # cumulative quantity expired by STP
    last_prevented_qty: int = 0
    counter_order_id: int = -1


class Trade(msgspec.Struct, gc=False):
    seq: int
    ts: int
    symbol: str
    trade_id: int  # per symbol, from 1
    price: int
    qty: int
    quote_qty: int
    buyer_order_id: int
    seller_order_id: int
    buyer_account_id: int
    seller_account_id: int
    is_buyer_maker: bool


class PreventedMatch(msgspec.Struct, gc=False):
    """A self-trade the taker's STP mode prevented (Binance's preventedMatches record)."""

    seq: int
    ts: int
    symbol: str
    prevented_match_id: int  # per symbol, from 1
    taker_order_id: int
    maker_order_id: int
    account_id: int
    stp_mode: StpMode
    price: int
    maker_prevented_qty: int
    taker_prevented_qty: int


class OrderAmended(msgspec.Struct, gc=False):
    """An order's quantity reduced in place (AMEND_ORDER): Binance's order amendment record,
    emitted just after the order's ExecutionReport REPLACED, whose seq is ``execution_id``."""

    seq: int
    ts: int
    symbol: str
    order_id: int
    account_id: int
    execution_id: int
    orig_client_order_id: str
    new_client_order_id: str
    orig_qty: int
    new_qty: int


class BalanceUpdate(msgspec.Struct, gc=False):
    """A funding step's change of the account's FREE balance: Binance's balanceUpdate (deposit
    +amount, withdrawal request -amount, failed/canceled withdrawal +amount, completed 0)."""

    seq: int
    ts: int
    account_id: int
    asset: str
    delta: int


class AccountBalances(msgspec.Struct, gc=False):
    """Balances after the command, for every asset of the account whose (free, locked) the
    command changed, assets in ascending order: Binance's outboundAccountPosition."""

    seq: int
    ts: int
    account_id: int
    balances: tuple[tuple[str, int, int], ...]  # (asset, free, locked)


class DepthUpdate(msgspec.Struct, gc=False):
    """The levels of one symbol whose visible quantity the command changed.

    ``first_update_id``..``final_update_id`` advance the symbol's update id by one per level
    listed (Binance's U and u). Bids descending, asks ascending; qty 0 removes the level.
    """

    seq: int
    ts: int
    symbol: str
    first_update_id: int
    final_update_id: int
    bids: tuple[tuple[int, int], ...]
    asks: tuple[tuple[int, int], ...]


class SymbolUpdated(msgspec.Struct, gc=False):
    seq: int
    ts: int
    spec: SymbolSpec


class AccountFeesUpdated(msgspec.Struct, gc=False):
    seq: int
    ts: int
    account_id: int
    maker_rate: int
    taker_rate: int


class Fill(msgspec.Struct, gc=False):
    price: int
    qty: int
    commission: int
    commission_asset: str
    trade_id: int


class OrderResult(msgspec.Struct, gc=False):
    """An order as the command left it: what Binance's RESULT and FULL responses show."""

    order: OrderInfo
    status: OrderStatus
    executed_qty: int
    cum_quote: int
    working_ts: int
    fills: tuple[Fill, ...]  # this command's fills of this order, in trade order
    cancel_client_order_id: str = ""


class OrderListInfo(msgspec.Struct, gc=False):
    """An order list as a command left it: Binance's listStatus without its orderReports.
    ``orders`` are (orderId, clientOrderId), ascending id."""

    order_list_id: int
    account_id: int
    symbol: str
    contingency_type: ContingencyType
    list_status_type: ListStatusType
    list_order_status: ListOrderStatus
    list_client_order_id: str
    transaction_ts: int
    orders: tuple[tuple[int, str], ...]


class ListStatus(msgspec.Struct, gc=False):
    """A change of an order list: Binance's listStatus (docs/engine.md, "Order lists")."""

    seq: int
    ts: int
    order_list: OrderListInfo


class ReplyPart(msgspec.Struct, gc=False):
    outcome: Outcome
    code: int  # 0 for success
    msg: str
    result: OrderResult | None


class Reply(msgspec.Struct, gc=False, omit_defaults=True):
    """Last event of every command: success (code 0) or the Binance error, plus the parts a
    REST response needs (one for NEW_ORDER / CANCEL_ORDER, cancel then new for
    CANCEL_REPLACE, one per canceled order for CANCEL_ALL, none otherwise), and for admin
    commands ``detail``: their result as JSON text (e.g. ``{"accountId":7}``), omitted from
    the wire when empty."""

    seq: int
    ts: int
    request_id: str
    command: str
    code: int
    msg: str
    parts: tuple[ReplyPart, ...]
    detail: str = ""
    order_list: OrderListInfo | None = None  # NEW_ORDER_LIST, CANCEL_ORDER_LIST


class AdminAction(msgspec.Struct, gc=False):
    """The audit record of one admin command (or RejectedAdmin), accepted or not, emitted just
    before its Reply. ``command`` is the admin command's wire name (for a RejectedAdmin, the
    name the record claimed); ``detail`` is the command's body as JSON text: what was asked."""

    seq: int
    ts: int
    request_id: str
    command: str
    principal: str
    code: int
    msg: str
    detail: str


class AccountUpdated(msgspec.Struct, gc=False):
    """An account created, frozen or unfrozen; ``status`` is "ACTIVE" or "FROZEN"."""

    seq: int
    ts: int
    account_id: int
    status: str


class FundingUpdate(msgspec.Struct, gc=False):
    """One step of a deposit or withdrawal.

    ``kind`` "DEPOSIT" | "WITHDRAWAL"; ``status`` "CREDITED" (deposit) | "REQUESTED" |
    "COMPLETED" | "FAILED" | "CANCELED"; ``funding_id`` is the deposit's tx_id (its request id
    when it has none) or the withdrawal's id; ``tx_id`` is the deposit's ("" for withdrawals).
    """

    seq: int
    ts: int
    funding_id: str
    kind: str
    status: str
    account_id: int
    asset: str
    amount: int
    tx_id: str


Event = (
    ExecutionReport
    | Trade
    | PreventedMatch
    | OrderAmended
    | BalanceUpdate
    | AccountBalances
    | DepthUpdate
    | SymbolUpdated
    | AccountFeesUpdated
    | AdminAction
    | AccountUpdated
    | FundingUpdate
    | ListStatus
    | Reply
)
