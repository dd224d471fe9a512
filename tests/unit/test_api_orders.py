"""POST /api/v3/order parameters -> NewOrder, and order responses formatted as Binance does."""

from __future__ import annotations

import pytest

from bourse.api.orders import RespType, parse_new_order
from bourse.api.params import Params, parse_params
from bourse.api.responses import cancel_response, new_order_response
from bourse.domain.commands import NewOrder
from bourse.domain.enums import OrderStatus, OrderType, Side, StpMode, TimeInForce
from bourse.domain.errors import BinanceError
from bourse.domain.events import Fill, OrderInfo, OrderResult

pytestmark = pytest.mark.unit


def parse(query: str, body: str = "") -> tuple[NewOrder, RespType]:
    return parse_new_order(Params(parse_params(query, body)), account_id=7, request_id="r", ts=99)


def test_limit_order() -> None:
    order, resp = parse(
        "symbol=btcusdt&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.01&price=100"
    )
    assert resp is RespType.FULL
    assert order.symbol == "BTCUSDT"
    assert order.quantity == 1_000_000
    assert order.price == 10_000_000_000
    assert order.time_in_force is TimeInForce.GTC
    assert len(order.client_order_id) == 22


def test_market_by_quote_with_explicit_id_and_resp_type() -> None:
    order, resp = parse(
        "symbol=ETHBTC&side=SELL&type=MARKET&quoteOrderQty=0.5&newClientOrderId=my-1"
        "&newOrderRespType=RESULT"
    )
    assert resp is RespType.RESULT
    assert order.quote_order_qty == 50_000_000
    assert order.client_order_id == "my-1"


def test_stop_defaults_to_ack() -> None:
    _, resp = parse("symbol=BTCUSDT&side=SELL&type=STOP_LOSS&quantity=1&stopPrice=5")
    assert resp is RespType.ACK


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1", -1102),  # no symbol
        ("symbol=BTCUSDT&side=HOLD&type=LIMIT&timeInForce=GTC&quantity=1&price=1", -1117),
        ("symbol=BTCUSDT&side=BUY&type=LIMITED&quantity=1&price=1", -1116),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=DAY&quantity=1&price=1", -1115),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&price=1", -1102),  # no quantity
        ("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&price=1", -1106),
        ("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1&quoteOrderQty=1", -1128),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=-1&price=1", -1100),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1e3&price=1", -1100),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=NaN&price=1", -1100),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=inf&price=1", -1100),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.000000001", -1111),
        (
            "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=99999999999999999999"
            "&price=1",
            -1100,
        ),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0&price=1", -1013),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1&foo=1", -1104),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1&price=2", -1101),
        ("symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=&price=1", -1105),
        (
            "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1"
            "&newClientOrderId=bad%20id",
            -1100,
        ),
        (
            "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1&trailingDelta=5",
            -1106,
        ),
        ("symbol=BTCUSDT&side=BUY&type=STOP_LOSS&quantity=1&trailingDelta=1.5", -1100),
        ("symbol=BTCUSDT&side=BUY&type=STOP_LOSS&quantity=1", -1102),  # no stopPrice/trailingDelta
    ],
)
def test_malformed_orders(query: str, code: int) -> None:
    with pytest.raises(BinanceError) as caught:
        parse(query)
    assert caught.value.code == code


def _result() -> OrderResult:
    info = OrderInfo(
        order_id=28,
        account_id=7,
        symbol="BTCUSDT",
        client_order_id="6gCrw2kRUAF9CvJDGP16IP",
        side=Side.SELL,
        type=OrderType.MARKET,
        time_in_force=None,
        quantity=10 * 10**8,
        price=0,
        stop_price=0,
        iceberg_qty=0,
        quote_order_qty=0,
        stp_mode=StpMode.NONE,
        created_ts=1507725176595,
    )
    fills = (Fill(4000 * 10**8, 10**8, 4 * 10**8, "USDT", 56),)
    return OrderResult(info, OrderStatus.FILLED, 10 * 10**8, 10 * 10**8, 1507725176595, fills)


def test_full_response_matches_binance_example() -> None:
    assert new_order_response(_result(), RespType.FULL, 1507725176595) == {
        "symbol": "BTCUSDT",
        "orderId": 28,
        "orderListId": -1,
        "clientOrderId": "6gCrw2kRUAF9CvJDGP16IP",
        "transactTime": 1507725176595,
        "price": "0.00000000",
        "origQty": "10.00000000",
        "executedQty": "10.00000000",
        "origQuoteOrderQty": "0.00000000",
        "cummulativeQuoteQty": "10.00000000",
        "status": "FILLED",
        "timeInForce": "GTC",
        "type": "MARKET",
        "side": "SELL",
        "workingTime": 1507725176595,
        "selfTradePreventionMode": "NONE",
        "fills": [
            {
                "price": "4000.00000000",
                "qty": "1.00000000",
                "commission": "4.00000000",
                "commissionAsset": "USDT",
                "tradeId": 56,
            }
        ],
    }


def test_ack_and_cancel_shapes() -> None:
    assert set(new_order_response(_result(), RespType.ACK, 1)) == {
        "symbol",
        "orderId",
        "orderListId",
        "clientOrderId",
        "transactTime",
    }
    canceled = cancel_response(_result(), 5)
    assert canceled["origClientOrderId"] == "6gCrw2kRUAF9CvJDGP16IP"
    assert canceled["clientOrderId"] == ""
