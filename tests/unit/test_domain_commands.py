"""validate_new_order_shape for every order type, with Binance's codes and messages, and the
error helpers it uses."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bourse.domain import errors
from bourse.domain.commands import (
    ADMIN_COMMAND_NAMES,
    CLIENT_ORDER_ID_RE,
    COMMAND_NAMES,
    NewOrder,
    validate_new_order_shape,
)
from bourse.domain.enums import OrderType, Side, StpMode, TimeInForce
from bourse.domain.errors import BinanceError

pytestmark = pytest.mark.unit

Q = 1_000_000  # 0.01
P = 100 * 10**8  # 100.00


def order(otype: OrderType, **fields: Any) -> NewOrder:
    return NewOrder(
        request_id="r1",
        ts=1,
        account_id=1,
        symbol="BTCUSDT",
        side=fields.pop("side", Side.BUY),
        type=otype,
        client_order_id=fields.pop("client_order_id", "my-order_1"),
        **fields,
    )


# A valid shape of every order type (plus the iceberg variants).
VALID = {
    "LIMIT": order(OrderType.LIMIT, time_in_force=TimeInForce.GTC, quantity=Q, price=P),
    "LIMIT IOC": order(OrderType.LIMIT, time_in_force=TimeInForce.IOC, quantity=Q, price=P),
    "LIMIT FOK": order(OrderType.LIMIT, time_in_force=TimeInForce.FOK, quantity=Q, price=P),
    "LIMIT iceberg": order(
        OrderType.LIMIT, time_in_force=TimeInForce.GTC, quantity=3 * Q, price=P, iceberg_qty=Q
    ),
    "MARKET qty": order(OrderType.MARKET, quantity=Q),
    "MARKET quote": order(OrderType.MARKET, quote_order_qty=10 * 10**8),
    "LIMIT_MAKER": order(OrderType.LIMIT_MAKER, quantity=Q, price=P),
    "LIMIT_MAKER iceberg": order(OrderType.LIMIT_MAKER, quantity=3 * Q, price=P, iceberg_qty=Q),
    "STOP_LOSS": order(OrderType.STOP_LOSS, quantity=Q, stop_price=P),
    "TAKE_PROFIT": order(OrderType.TAKE_PROFIT, quantity=Q, stop_price=P, side=Side.SELL),
    "STOP_LOSS_LIMIT": order(
        OrderType.STOP_LOSS_LIMIT,
        time_in_force=TimeInForce.GTC,
        quantity=Q,
        price=P,
        stop_price=P,
    ),
    "TAKE_PROFIT_LIMIT": order(
        OrderType.TAKE_PROFIT_LIMIT,
        time_in_force=TimeInForce.IOC,
        quantity=Q,
        price=P,
        stop_price=P,
    ),
    "TAKE_PROFIT_LIMIT iceberg": order(
        OrderType.TAKE_PROFIT_LIMIT,
        time_in_force=TimeInForce.GTC,
        quantity=2 * Q,
        price=P,
        stop_price=P,
        iceberg_qty=Q,
    ),
    "with stp": order(OrderType.MARKET, quantity=Q, stp_mode=StpMode.EXPIRE_BOTH),
}


def reject(o: NewOrder) -> tuple[int, str]:
    with pytest.raises(BinanceError) as info:
        validate_new_order_shape(o)
    return info.value.code, info.value.msg


def mandatory(name: str) -> tuple[int, str]:
    return (-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def not_required(name: str) -> tuple[int, str]:
    return (-1106, f"Parameter '{name}' sent when not required.")


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_shapes_pass(name: str) -> None:
    validate_new_order_shape(VALID[name])


# ---------------------------------------------------------------- -1102 missing parameters


@pytest.mark.parametrize(
    ("name", "missing", "param"),
    [
        ("LIMIT", "time_in_force", "timeInForce"),
        ("LIMIT", "quantity", "quantity"),
        ("LIMIT", "price", "price"),
        ("LIMIT_MAKER", "quantity", "quantity"),
        ("LIMIT_MAKER", "price", "price"),
        ("STOP_LOSS", "quantity", "quantity"),
        ("STOP_LOSS", "stop_price", "stopPrice"),
        ("TAKE_PROFIT", "stop_price", "stopPrice"),
        ("STOP_LOSS_LIMIT", "time_in_force", "timeInForce"),
        ("STOP_LOSS_LIMIT", "price", "price"),
        ("STOP_LOSS_LIMIT", "stop_price", "stopPrice"),
        ("TAKE_PROFIT_LIMIT", "quantity", "quantity"),
        ("TAKE_PROFIT_LIMIT", "price", "price"),
        ("TAKE_PROFIT_LIMIT", "stop_price", "stopPrice"),
        ("MARKET qty", "quantity", "quantity"),  # neither quantity nor quoteOrderQty
        ("MARKET quote", "quote_order_qty", "quantity"),
    ],
)
def test_missing_parameter(name: str, missing: str, param: str) -> None:
    changes: dict[str, Any] = {missing: None}
    assert reject(replace(VALID[name], **changes)) == mandatory(param)


def test_missing_is_reported_before_extra() -> None:
    o = replace(VALID["LIMIT"], price=None, stop_price=P)
    assert reject(o) == mandatory("price")


# ------------------------------------------------------------- -1106 parameters not required


@pytest.mark.parametrize(
    ("name", "extra", "value", "param"),
    [
        ("MARKET qty", "price", P, "price"),
        ("MARKET qty", "time_in_force", TimeInForce.GTC, "timeInForce"),
        ("MARKET qty", "stop_price", P, "stopPrice"),
        ("MARKET qty", "iceberg_qty", Q, "icebergQty"),
        ("LIMIT", "stop_price", P, "stopPrice"),
        ("LIMIT", "quote_order_qty", P, "quoteOrderQty"),
        ("LIMIT_MAKER", "time_in_force", TimeInForce.GTC, "timeInForce"),
        ("LIMIT_MAKER", "stop_price", P, "stopPrice"),
        ("STOP_LOSS", "price", P, "price"),
        ("STOP_LOSS", "time_in_force", TimeInForce.GTC, "timeInForce"),
        ("STOP_LOSS", "iceberg_qty", Q // 2, "icebergQty"),
        ("TAKE_PROFIT", "quote_order_qty", P, "quoteOrderQty"),
        ("STOP_LOSS_LIMIT", "quote_order_qty", P, "quoteOrderQty"),
    ],
)
def test_parameter_not_required(name: str, extra: str, value: object, param: str) -> None:
    changes: dict[str, Any] = {extra: value}
    assert reject(replace(VALID[name], **changes)) == not_required(param)


def test_quantity_and_quote_order_qty_together() -> None:
    o = replace(VALID["MARKET qty"], quote_order_qty=10**8)
    assert reject(o) == (-1128, "Combination of optional parameters invalid.")


# ---------------------------------------------------------------------- -1100 client id


@pytest.mark.parametrize(
    "client_id", ["", "a" * 37, "has space", "tab\t", "semi;colon", "é", "a+b", "new\n"]
)
def test_bad_client_order_id(client_id: str) -> None:
    code, msg = reject(replace(VALID["LIMIT"], client_order_id=client_id))
    assert code == -1100
    assert "newClientOrderId" in msg


@pytest.mark.parametrize("client_id", ["a", "A" * 36, "x.y:z/w_v-u", "0123456789"])
def test_good_client_order_id(client_id: str) -> None:
    validate_new_order_shape(replace(VALID["LIMIT"], client_order_id=client_id))


@given(st.text(max_size=40))
def test_client_id_rule_is_binances(text: str) -> None:
    ok = 1 <= len(text) <= 36 and all(c.isascii() and (c.isalnum() or c in ".:/_-") for c in text)
    assert bool(CLIENT_ORDER_ID_RE.match(text)) == ok
    o = replace(VALID["MARKET qty"], client_order_id=text)
    if ok:
        validate_new_order_shape(o)
    else:
        assert reject(o)[0] == -1100


# ------------------------------------------------------------------- -1013 bad numbers


@pytest.mark.parametrize(
    ("name", "field", "value", "msg"),
    [
        ("LIMIT", "quantity", 0, "Invalid quantity."),
        ("LIMIT", "quantity", -Q, "Invalid quantity."),
        ("MARKET quote", "quote_order_qty", 0, "Invalid quantity."),
        ("MARKET qty", "quantity", -1, "Invalid quantity."),
        ("LIMIT iceberg", "iceberg_qty", 0, "Invalid quantity."),
        ("LIMIT", "price", 0, "Invalid price."),
        ("LIMIT_MAKER", "price", -P, "Invalid price."),
        ("STOP_LOSS", "stop_price", 0, "Invalid price."),
        ("STOP_LOSS_LIMIT", "stop_price", -1, "Invalid price."),
    ],
)
def test_invalid_numbers(name: str, field: str, value: int, msg: str) -> None:
    changes: dict[str, Any] = {field: value}
    assert reject(replace(VALID[name], **changes)) == (-1013, msg)


# -------------------------------------------------------------------------- -2010 iceberg


@pytest.mark.parametrize("ice", [3 * Q, 4 * Q])
def test_iceberg_must_be_below_quantity(ice: int) -> None:
    o = replace(VALID["LIMIT iceberg"], iceberg_qty=ice)
    assert reject(o) == (-2010, "IcebergQty exceeds QTY.")


@pytest.mark.parametrize("tif", [TimeInForce.IOC, TimeInForce.FOK])
def test_iceberg_needs_gtc(tif: TimeInForce) -> None:
    o = replace(VALID["LIMIT iceberg"], time_in_force=tif)
    assert reject(o) == (-2010, "Unsupported order combination")


# ------------------------------------------------------------------ account, side, type, tif


def test_fee_account_cannot_trade() -> None:
    code, msg = reject(replace(VALID["LIMIT"], account_id=0))
    assert code == -1130 and msg.startswith("Invalid data sent for a parameter.")
    assert reject(replace(VALID["LIMIT"], account_id=-3))[0] == -1130


def test_unknown_side_type_tif() -> None:
    # not a Side / OrderType / TimeInForce at all (ill-typed on purpose)
    limit = VALID["LIMIT"]
    assert reject(replace(limit, side=cast(Side, "HOLD"))) == (-1117, "Invalid side.")
    assert reject(replace(limit, type=cast(OrderType, "OCO"))) == (-1116, "Invalid orderType.")
    tif = cast(TimeInForce, "GTX")
    assert reject(replace(limit, time_in_force=tif)) == (-1115, "Invalid timeInForce.")


def test_check_order_account_then_client_id() -> None:
    o = replace(VALID["LIMIT"], account_id=0, client_order_id="", price=None)
    assert reject(o)[0] == -1130
    o = replace(VALID["LIMIT"], client_order_id="", price=None)
    assert reject(o)[0] == -1100


# ----------------------------------------------------------------------------- error data


def test_error_helpers() -> None:
    e = errors.filter_failure("LOT_SIZE")
    assert (e.code, e.msg, e.http_status) == (-1013, "Filter failure: LOT_SIZE", 400)
    assert e.as_dict() == {"code": -1013, "msg": "Filter failure: LOT_SIZE"}
    assert str(e) == "-1013: Filter failure: LOT_SIZE"
    assert errors.rejected(errors.MSG_WOULD_TAKE).as_dict() == {
        "code": -2010,
        "msg": "Order would immediately match and take.",
    }
    assert errors.cancel_rejected().as_dict() == {"code": -2011, "msg": "Unknown order sent."}
    assert errors.invalid_parameter().msg == "Invalid data sent for a parameter."
    assert errors.invalid_parameter("x").msg == "Invalid data sent for a parameter. x"
    assert errors.EXECUTION_UNKNOWN_ERROR.http_status == 503
    assert errors.CANCEL_REPLACE_PARTIAL_ERROR.code == -2021
    assert errors.CANCEL_REPLACE_FAILED_ERROR.code == -2022


def test_command_names_cover_every_command() -> None:
    assert sorted(COMMAND_NAMES.values()) == sorted(
        [
            "NEW_ORDER",
            "CANCEL_ORDER",
            "CANCEL_REPLACE",
            "CANCEL_ALL",
            "AMEND_ORDER",
            "NEW_ORDER_LIST",
            "CANCEL_ORDER_LIST",
            "DRY_RUN_ORDER",
            "ADD_SYMBOL",
            "UPDATE_SYMBOL",
            "SET_SYMBOL_STATUS",
            "DELIST_SYMBOL",
            "SET_ACCOUNT_FEES",
            "CREATE_ACCOUNT",
            "SET_ACCOUNT_STATUS",
            "DEPOSIT",
            "WITHDRAW_REQUEST",
            "WITHDRAW_SETTLE",
            "KEY_CHANGE",
            "REJECTED_ADMIN",
        ]
    )
    trader = {
        "NEW_ORDER",
        "CANCEL_ORDER",
        "CANCEL_REPLACE",
        "CANCEL_ALL",
        "AMEND_ORDER",
        "NEW_ORDER_LIST",
        "CANCEL_ORDER_LIST",
        "DRY_RUN_ORDER",
    }
    assert set(COMMAND_NAMES.values()) - trader == ADMIN_COMMAND_NAMES
