"""Commands: the engine's only input, one type each.

Every command carries ``request_id`` (correlates the reply) and ``ts`` (ms since the epoch,
stamped at intake: the engine never reads a clock). Amounts are integer 1e-8 units.

A trader's command also carries ``deadline``: its request's ``timestamp + recvWindow`` (ms
since the epoch; 0 = none). The matching service hands the engine its own clock with each
batch, and a command whose deadline has passed by then is refused (-1021) instead of executed
(docs/engine.md, "Late commands").

``validate_new_order_shape`` checks which parameters an order type needs or forbids, with
Binance's codes; the API calls it before a command is produced and the engine calls it again
because the log is its only input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bourse.domain import errors
from bourse.domain.enums import (
    CancelReplaceMode,
    OrderType,
    Side,
    StpMode,
    SymbolStatus,
    TimeInForce,
)
from bourse.domain.symbols import SymbolSpec

FEE_ACCOUNT = 0  # receives every commission; traders' account ids are >= 1
CLIENT_ORDER_ID_RE = re.compile(r"\A[.A-Za-z0-9:/_-]{1,36}\Z")  # Binance's newClientOrderId rule


@dataclass(frozen=True, slots=True)
class NewOrder:
    request_id: str
    ts: int
    account_id: int
    symbol: str
    side: Side
    type: OrderType
    client_order_id: str
    quantity: int | None = None
    quote_order_qty: int | None = None
    price: int | None = None
    stop_price: int | None = None
    time_in_force: TimeInForce | None = None
    iceberg_qty: int | None = None
    stp_mode: StpMode | None = None  # None: the symbol's default
    deadline: int = 0
    trailing_delta: int | None = None  # BIPS; a trailing stop (docs/engine.md)


@dataclass(frozen=True, slots=True)
class CancelOrder:
    request_id: str
    ts: int
    account_id: int
    symbol: str
    order_id: int | None = None  # takes precedence over orig_client_order_id, as on Binance
    orig_client_order_id: str | None = None
    cancel_client_order_id: str = ""  # Binance's newClientOrderId of the cancel itself
    deadline: int = 0


@dataclass(frozen=True, slots=True)
class CancelReplace:
    request_id: str
    ts: int
    mode: CancelReplaceMode
    cancel: CancelOrder
    new_order: NewOrder
    deadline: int = 0  # the cancel's and the new order's own are not looked at


@dataclass(frozen=True, slots=True)
class AmendOrder:
    """Reduce an open order's quantity in place, keeping its queue priority (Binance's order
    amend keep priority). ``new_client_order_id`` is always set: the API draws a random one
    when the request has none (the engine never invents ids)."""

    request_id: str
    ts: int
    account_id: int
    symbol: str
    new_qty: int
    new_client_order_id: str
    order_id: int | None = None  # takes precedence over orig_client_order_id, as on Binance
    orig_client_order_id: str | None = None
    deadline: int = 0


@dataclass(frozen=True, slots=True)
class CancelAll:
    request_id: str
    ts: int
    account_id: int
    symbol: str
    deadline: int = 0


@dataclass(frozen=True, slots=True)
class NewOrderList:
    """An OCO, OTO or OTOCO (``kind``), its orders in Binance's parameter order: OCO (above,
    below); OTO (working, pending); OTOCO (working, pending above, pending below). Every leg
    names the list's account and symbol; legs' ``request_id``/``ts``/``deadline`` are not
    looked at (docs/engine.md, "Order lists")."""

    request_id: str
    ts: int
    account_id: int
    symbol: str
    kind: str  # ORDER_LIST_KINDS
    list_client_order_id: str
    orders: tuple[NewOrder, ...]
    deadline: int = 0


@dataclass(frozen=True, slots=True)
class CancelOrderList:
    request_id: str
    ts: int
    account_id: int
    symbol: str
    order_list_id: int | None = None  # takes precedence over list_client_order_id
    list_client_order_id: str | None = None
    cancel_client_order_id: str = ""
    deadline: int = 0


ORDER_LIST_KINDS = ("OCO", "OTO", "OTOCO")


@dataclass(frozen=True, slots=True)
class DryRunOrder:
    """What ``order`` would do if it were placed now: the engine runs it on a copy of its
    symbol at this point of the sequence and replies with the outcome, changing nothing
    (docs/engine.md, "Dry runs"). ``order``'s own ``request_id``/``ts``/``deadline`` are not
    looked at."""

    request_id: str
    ts: int
    order: NewOrder
    deadline: int = 0


# ---------------------------------------------------------------------------------------------
# Admin commands: only the admin plane may issue them. On the command log each travels inside
# a SIGNED record (bourse.domain.codec.decode_record, docs/engine.md "Admin commands and who may
# issue them"); every one ends with ``principal``, the IAM identity that asked (recorded in the
# AdminAction event, never trusted for anything else).


@dataclass(frozen=True, slots=True)
class AddSymbol:
    request_id: str
    ts: int
    spec: SymbolSpec
    principal: str = ""


@dataclass(frozen=True, slots=True)
class UpdateSymbol:
    """Replace the filters and commissions of a listed symbol (base/quote must match; the
    symbol's status is kept, the spec's is ignored)."""

    request_id: str
    ts: int
    spec: SymbolSpec
    principal: str = ""


@dataclass(frozen=True, slots=True)
class SetSymbolStatus:
    request_id: str
    ts: int
    symbol: str
    status: SymbolStatus
    principal: str = ""


@dataclass(frozen=True, slots=True)
class DelistSymbol:
    """Cancel every open order and stop of the symbol, set it to BREAK for good."""

    request_id: str
    ts: int
    symbol: str
    principal: str = ""


@dataclass(frozen=True, slots=True)
class SetAccountFees:
    request_id: str
    ts: int
    account_id: int
    maker_rate: int  # 1e-8 units: 0.1% = 100_000
    taker_rate: int
    principal: str = ""


@dataclass(frozen=True, slots=True)
class CreateAccount:
    request_id: str
    ts: int
    account_id: int = 0  # 0: the engine allocates the next id
    principal: str = ""


@dataclass(frozen=True, slots=True)
class SetAccountStatus:
    request_id: str
    ts: int
    account_id: int
    frozen: bool
    principal: str = ""


@dataclass(frozen=True, slots=True)
class Deposit:
    request_id: str
    ts: int
    account_id: int
    asset: str
    amount: int
    tx_id: str = ""  # idempotency: a tx_id credits once ("" = no idempotency)
    principal: str = ""


@dataclass(frozen=True, slots=True)
class WithdrawRequest:
    """Move ``amount`` from free to locked until the withdrawal is settled."""

    request_id: str
    ts: int
    account_id: int
    asset: str
    amount: int
    withdrawal_id: str  # unique forever
    principal: str = ""


@dataclass(frozen=True, slots=True)
class WithdrawSettle:
    request_id: str
    ts: int
    withdrawal_id: str
    outcome: str  # WITHDRAW_OUTCOMES
    principal: str = ""


@dataclass(frozen=True, slots=True)
class KeyChange:
    """An API key created, revoked or rotated: no balance effect, recorded in the sequence."""

    request_id: str
    ts: int
    account_id: int
    api_key: str
    action: str  # KEY_ACTIONS
    principal: str = ""


@dataclass(frozen=True, slots=True)
class RejectedAdmin:
    """Never produced by anyone: ``decode_record`` builds it for an admin record that is not
    validly signed by a trusted key. ``command`` is the wire name the record claimed, the other
    fields are its claims; ``reason`` says why it was refused."""

    request_id: str
    ts: int
    command: str
    principal: str
    reason: str


WITHDRAW_OUTCOMES = ("COMPLETED", "FAILED", "CANCELED")
KEY_ACTIONS = ("CREATED", "REVOKED", "ROTATED")


Command = (
    NewOrder
    | CancelOrder
    | CancelReplace
    | CancelAll
    | AmendOrder
    | NewOrderList
    | CancelOrderList
    | DryRunOrder
    | AddSymbol
    | UpdateSymbol
    | SetSymbolStatus
    | DelistSymbol
    | SetAccountFees
    | CreateAccount
    | SetAccountStatus
    | Deposit
    | WithdrawRequest
    | WithdrawSettle
    | KeyChange
    | RejectedAdmin
)

COMMAND_NAMES: dict[type, str] = {
    NewOrder: "NEW_ORDER",
    CancelOrder: "CANCEL_ORDER",
    CancelReplace: "CANCEL_REPLACE",
    CancelAll: "CANCEL_ALL",
    AmendOrder: "AMEND_ORDER",
    NewOrderList: "NEW_ORDER_LIST",
    CancelOrderList: "CANCEL_ORDER_LIST",
    DryRunOrder: "DRY_RUN_ORDER",
    AddSymbol: "ADD_SYMBOL",
    UpdateSymbol: "UPDATE_SYMBOL",
    SetSymbolStatus: "SET_SYMBOL_STATUS",
    DelistSymbol: "DELIST_SYMBOL",
    SetAccountFees: "SET_ACCOUNT_FEES",
    CreateAccount: "CREATE_ACCOUNT",
    SetAccountStatus: "SET_ACCOUNT_STATUS",
    Deposit: "DEPOSIT",
    WithdrawRequest: "WITHDRAW_REQUEST",
    WithdrawSettle: "WITHDRAW_SETTLE",
    KeyChange: "KEY_CHANGE",
    RejectedAdmin: "REJECTED_ADMIN",
}

# The commands only the admin plane may issue (signed records); everything else is a trader's.
ADMIN_COMMANDS: frozenset[type] = frozenset(
    {
        AddSymbol,
        UpdateSymbol,
        SetSymbolStatus,
        DelistSymbol,
        SetAccountFees,
        CreateAccount,
        SetAccountStatus,
        Deposit,
        WithdrawRequest,
        WithdrawSettle,
        KeyChange,
        RejectedAdmin,
    }
)
ADMIN_COMMAND_NAMES: frozenset[str] = frozenset(COMMAND_NAMES[t] for t in ADMIN_COMMANDS)

# Which optional parameters each order type requires; any other one sent is -1106.
_REQUIRED: dict[OrderType, tuple[str, ...]] = {
    OrderType.LIMIT: ("time_in_force", "quantity", "price"),
    OrderType.MARKET: (),  # exactly one of quantity / quote_order_qty, checked below
    # Stops also need stop_price or trailing_delta (or both), checked below.
    OrderType.STOP_LOSS: ("quantity",),
    OrderType.STOP_LOSS_LIMIT: ("time_in_force", "quantity", "price"),
    OrderType.TAKE_PROFIT: ("quantity",),
    OrderType.TAKE_PROFIT_LIMIT: ("time_in_force", "quantity", "price"),
    OrderType.LIMIT_MAKER: ("quantity", "price"),
}
_ICEBERG_TYPES = frozenset(
    {OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT}
)
# Binance's parameter names, for messages.
BINANCE_PARAM = {
    "time_in_force": "timeInForce",
    "quantity": "quantity",
    "quote_order_qty": "quoteOrderQty",
    "price": "price",
    "stop_price": "stopPrice",
    "iceberg_qty": "icebergQty",
    "trailing_delta": "trailingDelta",
}
_TRIGGERED_TYPES = frozenset(
    {
        OrderType.STOP_LOSS,
        OrderType.STOP_LOSS_LIMIT,
        OrderType.TAKE_PROFIT,
        OrderType.TAKE_PROFIT_LIMIT,
    }
)


def validate_new_order_shape(order: NewOrder) -> None:
    """Raise the Binance error for a parameter set this order type cannot take.

    Checks presence and basic sanity only; symbol filters and balances are the engine's.
    """
    if order.account_id <= FEE_ACCOUNT:
        raise errors.invalid_parameter("accountId")
    if not CLIENT_ORDER_ID_RE.match(order.client_order_id):
        raise errors.illegal_chars("newClientOrderId", "^[\\.A-Z\\:/a-z0-9_-]{1,36}$")
    if order.side not in (Side.BUY, Side.SELL):
        raise errors.INVALID_SIDE_ERROR
    required = _REQUIRED.get(order.type)
    if required is None:
        raise errors.INVALID_ORDER_TYPE_ERROR
    for name in required:
        if getattr(order, name) is None:
            raise errors.mandatory(BINANCE_PARAM[name])
    if order.type is OrderType.MARKET:
        if order.quantity is None and order.quote_order_qty is None:
            raise errors.mandatory("quantity")
        if order.quantity is not None and order.quote_order_qty is not None:
            raise errors.BAD_COMBO_ERROR
    allowed = set(required) | {"iceberg_qty"} if order.type in _ICEBERG_TYPES else set(required)
    if order.type in _TRIGGERED_TYPES:
        if order.stop_price is None and order.trailing_delta is None:
            raise errors.mandatory("stopPrice")
        allowed |= {"stop_price", "trailing_delta"}
    if order.type is OrderType.MARKET:
        allowed |= {"quantity", "quote_order_qty"}
    for name in BINANCE_PARAM:
        if name not in allowed and getattr(order, name) is not None:
            raise errors.not_required(BINANCE_PARAM[name])
    if order.time_in_force is not None and order.time_in_force not in tuple(TimeInForce):
        raise errors.INVALID_TIF_ERROR
    if order.iceberg_qty is not None:
        if order.time_in_force not in (None, TimeInForce.GTC):
            raise errors.rejected(errors.MSG_UNSUPPORTED_COMBINATION)
        if order.quantity is not None and order.iceberg_qty >= order.quantity:
            raise errors.rejected(errors.MSG_ICEBERG_QTY)
    for name in ("quantity", "quote_order_qty", "iceberg_qty"):
        value = getattr(order, name)
        if value is not None and value <= 0:
            raise errors.INVALID_QUANTITY_ERROR
    for name in ("price", "stop_price"):
        value = getattr(order, name)
        if value is not None and value <= 0:
            raise errors.INVALID_PRICE_ERROR
