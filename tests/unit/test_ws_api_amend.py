"""The WebSocket API's order.amend.keepPriority and order.amendments: REST's handlers
(bourse.api.amendments), with REST's weights; an amendment counts no order."""

from __future__ import annotations

import pytest

from bourse.domain.commands import AmendOrder, Command
from bourse.domain.enums import Outcome
from bourse.domain.events import Reply, ReplyPart
from tests.unit.test_api_handlers import NOW
from tests.unit.test_api_handlers import result as order_result
from tests.unit.test_ws_api_limits import IP, Exchange
from tests.unit.test_ws_transport import _ws_signed

pytestmark = pytest.mark.unit


def _amended(command: Command) -> Reply:
    assert isinstance(command, AmendOrder)
    part = ReplyPart(Outcome.SUCCESS, 0, "", order_result())
    detail = '{"executionId":41,"origClientOrderId":"old","preventedQty":0}'
    return Reply(42, command.ts, command.request_id, "AMEND_ORDER", 0, "", (part,), detail)


def test_order_amend_keep_priority_sends_the_command_and_answers_binances_shape() -> None:
    exchange = Exchange()
    exchange.bus.answer = _amended
    params = {"symbol": "BTCUSDT", "orderId": "3", "newQty": "0.005", "newClientOrderId": "new"}
    answer = exchange.ws("order.amend.keepPriority", _ws_signed(params))
    assert answer["status"] == 200, answer
    (sent,) = exchange.bus.sent
    assert isinstance(sent, AmendOrder)
    assert (sent.order_id, sent.new_qty, sent.new_client_order_id) == (3, 500_000, "new")
    assert sent.deadline == NOW - 10 + 5_000
    result = answer["result"]
    assert result["executionId"] == 41
    assert result["amendedOrder"]["origClientOrderId"] == "old"
    assert exchange.limiter.orders == {}  # Binance: unfilled order count 0
    assert exchange.limiter.weight[IP] == 4


def test_order_amend_keep_priority_refusal() -> None:
    exchange = Exchange()
    answer = exchange.ws("order.amend.keepPriority", _ws_signed({"symbol": "BTCUSDT",
                                                                 "newQty": "1"}))  # fmt: skip
    assert answer["status"] == 400 and answer["error"]["code"] == -1102
    assert exchange.bus.sent == []


def test_order_amendments_is_rests_read() -> None:
    from bourse.api import amendments
    from bourse.ws.api import METHODS

    method = METHODS["order.amendments"]
    assert method.handler is amendments.order_amendments
    assert method.weight({"symbol": "BTCUSDT", "orderId": "9"}) == 4
