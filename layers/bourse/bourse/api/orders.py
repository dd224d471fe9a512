"""POST /api/v3/order (and order/test, cancelReplace's new part): Binance parameters ->
a ``NewOrder`` command, with Binance's codes for every malformed request.
"""

from __future__ import annotations

import re
import secrets
from enum import StrEnum

from bourse.api.params import Params
from bourse.api.signing import DEFAULT_RECV_WINDOW
from bourse.domain import errors
from bourse.domain.commands import NewOrder, validate_new_order_shape
from bourse.domain.enums import OrderType, Side, StpMode, TimeInForce


class RespType(StrEnum):
    ACK = "ACK"
    RESULT = "RESULT"
    FULL = "FULL"


# Parameters POST /api/v3/order reads; anything else is -1104 as on Binance.
ORDER_PARAMS = frozenset(
    {
        "symbol",
        "side",
        "type",
        "timeInForce",
        "quantity",
        "quoteOrderQty",
        "price",
        "newClientOrderId",
        "stopPrice",
        "icebergQty",
        "newOrderRespType",
        "selfTradePreventionMode",
        "strategyId",
        "strategyType",
        "trailingDelta",
        "recvWindow",
        "timestamp",
        "signature",
    }
)
_CLIENT_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


_CLIENT_ID_LENGTH = 22
_CLIENT_IDS = len(_CLIENT_ID_ALPHABET) ** _CLIENT_ID_LENGTH


def generate_client_order_id() -> str:
    """Binance generates a 22-character id when the client sends none. One uniform draw
    below 62^22 written in base 62 (each character uniform), not 22 draws: the 22
    ``secrets.choice`` calls were ~6% of an order's CPU in the function."""
    value = secrets.randbelow(_CLIENT_IDS)
    digits = []
    for _ in range(_CLIENT_ID_LENGTH):
        value, digit = divmod(value, len(_CLIENT_ID_ALPHABET))
        digits.append(_CLIENT_ID_ALPHABET[digit])
    return "".join(digits)


def check_known(params: Params, known: frozenset[str]) -> None:
    unknown = params.names() - known
    if unknown:
        read = len(params.names()) - len(unknown)
        raise errors.BinanceError(
            errors.UNREAD_PARAMETERS,
            f"Not all sent parameters were read; read '{read}' parameter(s) "
            f"but was sent '{len(params.names())}'.",
        )


def default_resp_type(order_type: OrderType) -> RespType:
    """MARKET and LIMIT orders answer FULL by default, every other type ACK (Binance)."""
    return RespType.FULL if order_type in (OrderType.MARKET, OrderType.LIMIT) else RespType.ACK


SYMBOL_RANGE = "^[A-Z0-9-_.]{1,20}$"
_SYMBOL_RE = re.compile(r"\A[A-Z0-9_.-]{1,20}\Z")


def symbol_param(params: Params) -> str:
    """``symbol``, upper-cased as Bourse accepts it: -1100 with Binance's legal range for any
    other character (non-ASCII included: it never reaches a command)."""
    value = params.required_str("symbol")
    symbol = value.upper() if value.isascii() else value
    if not _SYMBOL_RE.match(symbol):
        raise errors.illegal_chars("symbol", SYMBOL_RANGE)
    return symbol


def request_deadline(params: Params) -> int:
    """``timestamp + recvWindow`` of a signed request (the window defaults to 5000 ms as on
    Binance): when the command must have reached the matching engine; 0 without a timestamp
    (a request that was not signed)."""
    if "timestamp" not in params:
        return 0
    window = params.optional_int("recvWindow")
    return params.required_int("timestamp") + (DEFAULT_RECV_WINDOW if window is None else window)


def parse_new_order(
    params: Params, *, account_id: int, request_id: str, ts: int
) -> tuple[NewOrder, RespType]:
    check_known(params, ORDER_PARAMS)
    symbol = symbol_param(params)
    side = params.required_enum("side", Side, errors.INVALID_SIDE_ERROR)
    order_type = params.required_enum("type", OrderType, errors.INVALID_ORDER_TYPE_ERROR)
    client_order_id = params.optional_str("newClientOrderId") or generate_client_order_id()
    order = NewOrder(
        request_id=request_id,
        ts=ts,
        account_id=account_id,
        symbol=symbol,
        side=side,
        type=order_type,
        client_order_id=client_order_id,
        quantity=params.optional_decimal("quantity"),
        quote_order_qty=params.optional_decimal("quoteOrderQty"),
        price=params.optional_decimal("price"),
        stop_price=params.optional_decimal("stopPrice"),
        time_in_force=params.optional_enum("timeInForce", TimeInForce, errors.INVALID_TIF_ERROR),
        iceberg_qty=params.optional_decimal("icebergQty"),
        stp_mode=params.optional_enum("selfTradePreventionMode", StpMode),
        deadline=request_deadline(params),
        trailing_delta=params.optional_int("trailingDelta"),
    )
    validate_new_order_shape(order)
    resp_type = params.optional_enum("newOrderRespType", RespType) or default_resp_type(order_type)
    return order, resp_type
