"""Trailing stops at the API edge: trailingDelta parsed, trailingDelta/trailingTime in order
responses and executionReports, the TRAILING_DELTA filter and allowTrailingStop in
exchangeInfo."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from bourse.api.account import order_query
from bourse.api.market import exchange_info, symbol_info
from bourse.api.orders import RespType, parse_new_order
from bourse.api.params import Params, parse_params
from bourse.api.responses import new_order_response
from bourse.domain.enums import ExecutionType, OrderStatus, OrderType, Side, StpMode, TimeInForce
from bourse.domain.events import ExecutionReport, OrderInfo, OrderResult
from bourse.domain.markets import DEFAULT_MARKETS
from bourse.streams.payloads import execution_report

pytestmark = pytest.mark.unit


def _info(trailing_time: int) -> OrderInfo:
    return OrderInfo(
        5, 7, "BTCUSDT", "trail-1", Side.SELL, OrderType.STOP_LOSS_LIMIT, TimeInForce.GTC,
        10**8, 39_000 * 10**8, 0, 0, 0, StpMode.NONE, 1_000, 700, trailing_time,
    )  # fmt: skip


def test_trailing_delta_is_parsed_and_stop_price_is_optional() -> None:
    params = Params(parse_params(
        "symbol=BTCUSDT&side=SELL&type=STOP_LOSS_LIMIT&timeInForce=GTC&quantity=1"
        "&price=39000&trailingDelta=700", ""))  # fmt: skip
    order, resp_type = parse_new_order(params, account_id=7, request_id="r", ts=1)
    assert (order.trailing_delta, order.stop_price, resp_type) == (700, None, RespType.ACK)


def test_order_responses_carry_trailing_delta_and_time() -> None:
    result = OrderResult(_info(1_000), OrderStatus.NEW, 0, 0, -1, ())
    body: dict[str, Any] = new_order_response(result, RespType.RESULT, 1_000)
    assert (body["trailingDelta"], body["trailingTime"], body["stopPrice"]) == (
        700,
        1_000,
        "0.00000000",
    )
    query = order_query(result)
    assert (query["trailingDelta"], query["trailingTime"]) == (700, 1_000)
    not_trailing = msgspec.structs.replace(_info(-1), trailing_delta=0)
    plain = order_query(OrderResult(not_trailing, OrderStatus.NEW, 0, 0, -1, ()))
    assert "trailingDelta" not in plain and "trailingTime" not in plain


def test_execution_report_shows_d_always_and_D_once_tracking() -> None:
    def report(trailing_time: int) -> dict[str, Any]:
        ev = ExecutionReport(
            9, 2_000, _info(trailing_time), ExecutionType.NEW, OrderStatus.NEW, "NONE",
            0, 0, 0, 0, 0, 0, "", -1, False, False, -1,
        )  # fmt: skip
        return execution_report(ev)

    assert report(-1)["d"] == 700 and "D" not in report(-1)
    assert report(1_500)["D"] == 1_500


def test_exchange_info_lists_trailing_delta_and_the_exchange_filters() -> None:
    info = symbol_info(DEFAULT_MARKETS[0])
    assert info["allowTrailingStop"] is True
    (trailing,) = [f for f in info["filters"] if f["filterType"] == "TRAILING_DELTA"]
    assert trailing == {
        "filterType": "TRAILING_DELTA",
        "minTrailingAboveDelta": 10,
        "maxTrailingAboveDelta": 2000,
        "minTrailingBelowDelta": 10,
        "maxTrailingBelowDelta": 2000,
    }
    body = exchange_info(Params({}), {s.symbol: s for s in DEFAULT_MARKETS}, 0)
    assert [f["filterType"] for f in body["exchangeFilters"]] == [
        "EXCHANGE_MAX_NUM_ORDERS",
        "EXCHANGE_MAX_NUM_ALGO_ORDERS",
        "EXCHANGE_MAX_NUM_ICEBERG_ORDERS",
    ]
