"""What the REST API's history reads get from the record: one frozen row type per table read
(field names are the table's columns, so ``psycopg.rows.class_row`` fills them), amounts in
1e-8 units and times in ms, as the tables hold them. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TradeRow:
    trade_id: int
    ts: int
    price: int
    qty: int
    quote_qty: int
    is_buyer_maker: bool


@dataclass(frozen=True, slots=True)
class AggTradeRow:
    agg_id: int
    last_trade_id: int
    price: int
    qty: int
    ts: int
    is_buyer_maker: bool


@dataclass(frozen=True, slots=True)
class KlineRow:
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


@dataclass(frozen=True, slots=True)
class OrderRow:
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str | None
    quantity: int
    price: int
    stop_price: int
    iceberg_qty: int
    quote_order_qty: int
    stp_mode: str
    status: str
    executed_qty: int
    cum_quote: int
    is_working: bool
    working_ts: int
    created_ts: int
    update_ts: int
    trailing_delta: int = 0  # BIPS; 0: not a trailing stop
    trailing_time: int = -1
    order_list_id: int = -1  # Binance's orderListId (migration 0008)


@dataclass(frozen=True, slots=True)
class AccountTradeRow:
    symbol: str
    trade_id: int
    order_id: int
    is_buyer: bool
    is_maker: bool
    price: int
    qty: int
    quote_qty: int
    commission: int
    commission_asset: str
    ts: int


@dataclass(frozen=True, slots=True)
class AmendmentRow:
    """One amendment of an order (``order_amendments``, migration 0007)."""

    symbol: str
    order_id: int
    execution_id: int
    orig_client_order_id: str
    new_client_order_id: str
    orig_qty: int
    new_qty: int
    ts: int


@dataclass(frozen=True, slots=True)
class PreventedMatchRow:
    """A self-trade STP prevented, from the TRADE_PREVENTION execution reports of its orders
    (``order_events``): the maker's price and the taker's mode from ``orders``."""

    symbol: str
    prevented_match_id: int
    taker_order_id: int
    maker_order_id: int
    stp_mode: str
    price: int
    maker_prevented_qty: int
    ts: int


@dataclass(frozen=True, slots=True)
class OrderListRow:
    """An order list as its newest ListStatus left it (``order_lists``, migration 0008)."""

    order_list_id: int
    account_id: int
    symbol: str
    contingency_type: str
    list_status_type: str
    list_order_status: str
    list_client_order_id: str
    transaction_time: int
    orders: list[tuple[int, str]]  # (orderId, clientOrderId), ascending id
