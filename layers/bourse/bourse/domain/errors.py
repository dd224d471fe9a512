"""Binance error codes, messages and HTTP statuses, as data.

A rejection anywhere in Bourse is a ``BinanceError``: the engine puts its code and message in
the command's reply; the API turns it into ``{"code": ..., "msg": ...}`` with ``http_status``.
Messages are Binance's own text so that clients which match on them keep working.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BinanceError(Exception):
    code: int
    msg: str
    http_status: int = 400

    def __str__(self) -> str:
        return f"{self.code}: {self.msg}"

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "msg": self.msg}


# Codes, by Binance's names.
UNKNOWN = -1000
DISCONNECTED = -1001
UNAUTHORIZED = -1002
TOO_MANY_REQUESTS = -1003
UNEXPECTED_RESP = -1006
TIMEOUT = -1007
INVALID_MESSAGE = -1013
UNKNOWN_ORDER_COMPOSITION = -1014
TOO_MANY_ORDERS = -1015
INVALID_TIMESTAMP = -1021
INVALID_SIGNATURE = -1022
ILLEGAL_CHARS = -1100
TOO_MANY_PARAMETERS = -1101
MANDATORY_PARAM_EMPTY_OR_MALFORMED = -1102
UNKNOWN_PARAM = -1103
UNREAD_PARAMETERS = -1104
PARAM_EMPTY = -1105
PARAM_NOT_REQUIRED = -1106
BAD_PRECISION = -1111
INVALID_TIF = -1115
INVALID_ORDER_TYPE = -1116
INVALID_SIDE = -1117
EMPTY_NEW_CL_ORD_ID = -1118
EMPTY_ORG_CL_ORD_ID = -1119
BAD_INTERVAL = -1120
BAD_SYMBOL = -1121
INVALID_LISTEN_KEY = -1125
OPTIONAL_PARAMS_BAD_COMBO = -1128
INVALID_PARAMETER = -1130
BAD_RECV_WINDOW = -1131
NEW_ORDER_REJECTED = -2010
CANCEL_REJECTED = -2011
NO_SUCH_ORDER = -2013
BAD_API_KEY_FMT = -2014
REJECTED_MBX_KEY = -2015
CANCEL_REPLACE_PARTIAL = -2021
CANCEL_REPLACE_FAILED = -2022
ORDER_AMEND_REJECTED = -2038
# Order lists (errors.md).
OCO_ORDER_TYPE_REJECTED = -1158
OCO_ICEBERGQTY_TIMEINFORCE = -1160
BUY_OCO_LIMIT_MUST_BE_BELOW = -1165
SELL_OCO_LIMIT_MUST_BE_ABOVE = -1166
BOTH_OCO_ORDERS_CANNOT_BE_LIMIT = -1168
BUY_OCO_STOP_LOSS_MUST_BE_ABOVE = -1196
SELL_OCO_STOP_LOSS_MUST_BE_BELOW = -1197
BUY_OCO_TAKE_PROFIT_MUST_BE_BELOW = -1198
SELL_OCO_TAKE_PROFIT_MUST_BE_ABOVE = -1199

# Messages used with NEW_ORDER_REJECTED (-2010) and CANCEL_REJECTED (-2011).
MSG_INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
MSG_WOULD_TAKE = "Order would immediately match and take."
MSG_WOULD_TRIGGER = "Order would trigger immediately."
MSG_MARKET_CLOSED = "Market is closed."
MSG_DUPLICATE_ORDER = "Duplicate order sent."
MSG_UNKNOWN_ORDER = "Unknown order sent."
MSG_ORDER_NOT_EXIST = "Order does not exist."
MSG_UNSUPPORTED_COMBINATION = "Unsupported order combination"
MSG_ICEBERG_QTY = "IcebergQty exceeds QTY."
MSG_TRAILING_NOT_SUPPORTED = "Trailing stop orders are not supported for this symbol."
MSG_STP_NOT_ALLOWED = "This symbol does not support the selected self-trade prevention mode."
MSG_ACCOUNT_DISABLED = "This action is disabled on this account."  # a frozen account's orders
MSG_UNAUTHORIZED = "You are not authorized to execute this request."
# Messages used with ORDER_AMEND_REJECTED (-2038), errors.md's wording.
MSG_AMEND_INCREASE = "Order amend (quantity increase) is not supported."
MSG_NO_STATE_CHANGE = "The requested action would change no state; rejecting"
# Bourse's own: amending an order of an open order list is not built yet (docs/api.md).
MSG_AMEND_ORDER_LIST = "Order amend is not supported for orders of an open order list."
MSG_OCO_BAD_PRICES = "The relationship of the prices for the orders is not correct."


def filter_failure(filter_name: str) -> BinanceError:
    return BinanceError(INVALID_MESSAGE, f"Filter failure: {filter_name}")


def rejected(msg: str) -> BinanceError:
    return BinanceError(NEW_ORDER_REJECTED, msg)


def cancel_rejected(msg: str = MSG_UNKNOWN_ORDER) -> BinanceError:
    return BinanceError(CANCEL_REJECTED, msg)


def amend_rejected(msg: str = MSG_UNKNOWN_ORDER) -> BinanceError:
    return BinanceError(ORDER_AMEND_REJECTED, msg)


def mandatory(param: str) -> BinanceError:
    return BinanceError(
        MANDATORY_PARAM_EMPTY_OR_MALFORMED,
        f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed.",
    )


def not_required(param: str) -> BinanceError:
    return BinanceError(PARAM_NOT_REQUIRED, f"Parameter '{param}' sent when not required.")


def illegal_chars(param: str, legal: str) -> BinanceError:
    return BinanceError(
        ILLEGAL_CHARS, f"Illegal characters found in parameter '{param}'; legal range is '{legal}'."
    )


def invalid_parameter(detail: str = "") -> BinanceError:
    msg = "Invalid data sent for a parameter."
    return BinanceError(INVALID_PARAMETER, f"{msg} {detail}".strip())


# Admin command refusals (-1130 with a reason the operator can act on).
UNKNOWN_ACCOUNT_ERROR = invalid_parameter("Unknown account.")
ACCOUNT_EXISTS_ERROR = invalid_parameter("Account already exists.")
UNKNOWN_WITHDRAWAL_ERROR = invalid_parameter("Unknown withdrawal.")
WITHDRAWAL_EXISTS_ERROR = invalid_parameter("withdrawalId already used.")
SYMBOL_DELISTED_ERROR = invalid_parameter("Symbol is delisted.")

BAD_PRECISION_ERROR = BinanceError(
    BAD_PRECISION, "Precision is over the maximum defined for this asset."
)
INVALID_SYMBOL_ERROR = BinanceError(BAD_SYMBOL, "Invalid symbol.")
# The matching engine's own recvWindow check (Binance: "just before a request is forwarded to
# the Matching Engine"): the command reached the sequencer after its request's window closed.
LATE_COMMAND_ERROR = BinanceError(
    INVALID_TIMESTAMP, "Timestamp for this request is outside of the recvWindow."
)
INVALID_TIF_ERROR = BinanceError(INVALID_TIF, "Invalid timeInForce.")
INVALID_ORDER_TYPE_ERROR = BinanceError(INVALID_ORDER_TYPE, "Invalid orderType.")
INVALID_SIDE_ERROR = BinanceError(INVALID_SIDE, "Invalid side.")
INVALID_QUANTITY_ERROR = BinanceError(INVALID_MESSAGE, "Invalid quantity.")
INVALID_PRICE_ERROR = BinanceError(INVALID_MESSAGE, "Invalid price.")
UNSUPPORTED_COMBINATION_ERROR = BinanceError(
    UNKNOWN_ORDER_COMPOSITION, "Unsupported order combination."
)
BAD_COMBO_ERROR = BinanceError(
    OPTIONAL_PARAMS_BAD_COMBO, "Combination of optional parameters invalid."
)
CANCEL_REPLACE_PARTIAL_ERROR = BinanceError(
    CANCEL_REPLACE_PARTIAL, "Order cancel-replace partially failed."
)
# An admin command that did not come from the admin plane (unsigned, badly signed, unknown key)
# or a replay of one that did: the engine refuses it and changes nothing.
UNAUTHORIZED_ERROR = BinanceError(UNAUTHORIZED, MSG_UNAUTHORIZED, http_status=401)
CANCEL_REPLACE_FAILED_ERROR = BinanceError(CANCEL_REPLACE_FAILED, "Order cancel-replace failed.")
EXECUTION_UNKNOWN_ERROR = BinanceError(
    TIMEOUT,
    "Timeout waiting for response from backend server. "
    "Send status unknown; execution status unknown.",
    http_status=503,
)

# Order lists: Binance's texts from errors.md.
OCO_ORDER_TYPE_ERROR = BinanceError(OCO_ORDER_TYPE_REJECTED, "Order type not supported in OCO.")
BUY_OCO_LIMIT_ERROR = BinanceError(
    BUY_OCO_LIMIT_MUST_BE_BELOW, "A limit order in a buy OCO must be below."
)
SELL_OCO_LIMIT_ERROR = BinanceError(
    SELL_OCO_LIMIT_MUST_BE_ABOVE, "A limit order in a sell OCO must be above."
)
OCO_BOTH_LIMIT_ERROR = BinanceError(
    BOTH_OCO_ORDERS_CANNOT_BE_LIMIT, "At least one OCO order must be contingent."
)
BUY_OCO_STOP_LOSS_ERROR = BinanceError(
    BUY_OCO_STOP_LOSS_MUST_BE_ABOVE, "A stop loss order in a buy OCO must be above."
)
SELL_OCO_STOP_LOSS_ERROR = BinanceError(
    SELL_OCO_STOP_LOSS_MUST_BE_BELOW, "A stop loss order in a sell OCO must be below."
)
BUY_OCO_TAKE_PROFIT_ERROR = BinanceError(
    BUY_OCO_TAKE_PROFIT_MUST_BE_BELOW, "A take profit order in a buy OCO must be below."
)
SELL_OCO_TAKE_PROFIT_ERROR = BinanceError(
    SELL_OCO_TAKE_PROFIT_MUST_BE_ABOVE, "A take profit order in a sell OCO must be above."
)
