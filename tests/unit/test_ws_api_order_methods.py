"""The WebSocket API's order.test, order.cancelReplace and openOrders.cancelAll (Binance's
WebSocket API methods of POST /api/v3/order/test, POST /api/v3/order/cancelReplace and
DELETE /api/v3/openOrders): the REST handlers, their weights and order counting, and the
cancel-replace failure with both results in ``error.data``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bourse.domain.commands import CancelAll, CancelReplace, Command
from bourse.domain.enums import Outcome
from bourse.domain.events import Reply, ReplyPart
from tests.unit.test_api_handlers import LIMIT, NOW
from tests.unit.test_api_handlers import result as order_result
from tests.unit.test_ws_api_limits import IP, Exchange
from tests.unit.test_ws_transport import _ws_signed

pytestmark = pytest.mark.unit


def test_order_test_checks_and_sends_nothing() -> None:
    exchange = Exchange()
    answer = exchange.ws("order.test", _ws_signed(LIMIT))
    assert answer["status"] == 200 and answer["result"] == {}
    assert exchange.bus.sent == []
    assert exchange.limiter.orders == {}  # weight only, as REST's order/test
    bad = exchange.ws("order.test", _ws_signed({**LIMIT, "side": "HOLD"}))
    assert bad["status"] == 400 and bad["error"]["code"] == -1117


def test_open_orders_cancel_all_sends_one_command_with_the_deadline() -> None:
    exchange = Exchange()
    answer = exchange.ws("openOrders.cancelAll", _ws_signed({"symbol": "BTCUSDT"}))
    assert answer["status"] == 200 and isinstance(answer["result"], list)
    (sent,) = exchange.bus.sent
    assert isinstance(sent, CancelAll) and sent.symbol == "BTCUSDT"
    assert sent.deadline == NOW - 10 + 5_000  # _ws_signed's timestamp + the default window
    assert exchange.limiter.weight[IP] == answer["rateLimits"][-1]["count"]


def _both(command: Command) -> Reply:
    assert isinstance(command, CancelReplace)
    cancelled = ReplyPart(Outcome.SUCCESS, 0, "", order_result())
    placed = ReplyPart(Outcome.SUCCESS, 0, "", order_result())
    return Reply(1, command.ts, command.request_id, "CANCEL_REPLACE", 0, "", (cancelled, placed))


def _failed(command: Command) -> Reply:
    assert isinstance(command, CancelReplace)
    parts = (ReplyPart(Outcome.FAILURE, -2011, "Unknown order sent.", None),
             ReplyPart(Outcome.NOT_ATTEMPTED, 0, "", None))  # fmt: skip
    return Reply(1, command.ts, command.request_id, "CANCEL_REPLACE", -2022,
                 "Order cancel-replace failed.", parts)  # fmt: skip


REPLACE = {**LIMIT, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": "5"}


def _answering(answer: Callable[[Command], Reply]) -> Exchange:
    exchange = Exchange()
    exchange.bus.answer = answer
    return exchange


def test_cancel_replace_answers_both_results_and_counts_an_order() -> None:
    exchange = _answering(_both)
    answer = exchange.ws("order.cancelReplace", _ws_signed(REPLACE))
    assert answer["status"] == 200, answer
    assert answer["result"]["cancelResult"] == answer["result"]["newOrderResult"] == "SUCCESS"
    assert exchange.limiter.orders[7] == 1  # a placement, as on REST


def test_cancel_replace_failure_carries_both_results_in_error_data() -> None:
    exchange = _answering(_failed)
    answer = exchange.ws("order.cancelReplace", _ws_signed(REPLACE))
    assert answer["status"] == 400
    assert answer["error"] == {
        "code": -2022,
        "msg": "Order cancel-replace failed.",
        "data": {"cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                 "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
                 "newOrderResponse": None},
    }  # fmt: skip
    assert "rateLimits" in answer
