"""PUT /api/v3/order/amend/keepPriority and GET /api/v3/order/amendments: Binance's
parameters, errors and response shapes, over a real engine (the command bus runs it)."""

from __future__ import annotations

from typing import Any, cast

import pytest

from bourse.api import amendments as am
from bourse.api import handlers as h
from bourse.api.routes import WEIGHTS
from bourse.domain.commands import AmendOrder, Command
from bourse.domain.errors import BinanceError
from bourse.domain.events import Reply
from bourse.record.views import AmendmentRow
from tests.unit.test_api_handlers import NOW, FakeBus, FakeKeys, FakeView, signed_request
from tests.unit.test_engine_helpers import Bench

pytestmark = pytest.mark.unit


class Record:
    """The record's read, as RecordHistory answers it."""

    def __init__(self, rows: list[AmendmentRow]) -> None:
        self.rows = rows
        self.asked: list[tuple[Any, ...]] = []

    def order_amendments(
        self, account_id: int, symbol: str, order_id: int, *, from_id: int | None, limit: int
    ) -> list[AmendmentRow]:
        self.asked.append((account_id, symbol, order_id, from_id, limit))
        return [r for r in self.rows if from_id is None or r.execution_id >= from_id][:limit]


SEEN: list[Any] = []  # the last command's events


def engine_deps() -> tuple[h.Deps, Bench, list[Command]]:
    bench = Bench(accounts=7)
    bench.order(7, "SELL", 550, 87, cid="mine")  # order 1: 5.50 BTC at 87
    sent: list[Command] = []

    def answer(cmd: Command) -> Reply:
        sent.append(cmd)
        events = bench.run(cmd)
        SEEN[:] = events
        reply = events[-1]
        assert isinstance(reply, Reply)
        return reply

    deps = h.Deps(FakeView(), FakeBus(answer), FakeKeys(), lambda: NOW, lambda: "req-1")
    return deps, bench, sent


def test_amend_response_is_binances_shape() -> None:
    deps, bench, sent = engine_deps()
    params = {"symbol": "BTCUSDT", "orderId": 1, "newQty": "5", "newClientOrderId": "kept"}
    body = am.amend_keep_priority(signed_request(params), deps)
    (cmd,) = sent
    assert isinstance(cmd, AmendOrder) and cmd.new_qty == 5 * 10**8 and cmd.account_id == 7
    assert set(body) == {"transactTime", "executionId", "amendedOrder"}
    assert body["transactTime"] == NOW
    assert body["amendedOrder"] == {
        "symbol": "BTCUSDT",
        "orderId": 1,
        "orderListId": -1,
        "origClientOrderId": "mine",
        "clientOrderId": "kept",
        "price": "87.00000000",
        "qty": "5.00000000",
        "executedQty": "0.00000000",
        "preventedQty": "0.00000000",
        "quoteOrderQty": "0.00000000",
        "cumulativeQuoteQty": "0.00000000",
        "status": "NEW",
        "timeInForce": "GTC",
        "type": "LIMIT",
        "side": "SELL",
        "workingTime": body["amendedOrder"]["workingTime"],
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }
    # the executionId is the seq of the REPLACED report ("I" on the user data stream)
    replaced = [e for e in SEEN if getattr(e, "exec_type", None) == "REPLACED"]
    assert body["executionId"] == replaced[0].seq
    assert bench.locked(7, "BTC") == 5 * 10**8


def test_a_generated_client_id_when_none_is_sent() -> None:
    deps, _, sent = engine_deps()
    body = am.amend_keep_priority(
        signed_request({"symbol": "BTCUSDT", "origClientOrderId": "mine", "newQty": "1"}), deps
    )
    (cmd,) = sent
    assert isinstance(cmd, AmendOrder)
    assert body["amendedOrder"]["clientOrderId"] == cmd.new_client_order_id != "mine"


@pytest.mark.parametrize(
    ("params", "code", "msg"),
    [
        ({"newQty": "1"}, -1102, "Param 'origClientOrderId' or 'orderId' must be sent"),
        ({"orderId": 1}, -1102, "Mandatory parameter 'newQty'"),
        ({"orderId": 1, "newQty": "0"}, -1013, "Invalid quantity."),
        ({"orderId": 1, "newQty": "5.5"}, -2038, "The requested action would change no state"),
        ({"orderId": 1, "newQty": "6"}, -2038, "Order amend (quantity increase) is not supported."),
        ({"orderId": 2, "newQty": "1"}, -2038, "Unknown order sent."),
        ({"orderId": 1, "newQty": "1", "newClientOrderId": "no spaces"}, -1100, "Illegal"),
        ({"orderId": 1, "newQty": "1", "quantity": "1"}, -1104, None),
    ],
)
def test_refusals(params: dict[str, Any], code: int, msg: str | None) -> None:
    deps, bench, _ = engine_deps()
    with pytest.raises(BinanceError) as err:
        am.amend_keep_priority(signed_request({"symbol": "BTCUSDT", **params}), deps)
    assert err.value.code == code and err.value.http_status == 400
    assert msg is None or err.value.msg.startswith(msg)
    assert bench.locked(7, "BTC") == 550 * 10**6  # nothing changed


def test_amend_needs_trade_permission() -> None:
    deps, _, sent = engine_deps()
    params = {"symbol": "BTCUSDT", "orderId": 1, "newQty": "1"}
    with pytest.raises(BinanceError):
        am.amend_keep_priority(signed_request(params, perms="USER_DATA"), deps)
    assert sent == []


def test_amendments_read_the_record() -> None:
    rows = [
        AmendmentRow("BTCUSDT", 9, 22, "W0f", "UQ1", 5 * 10**8, 4 * 10**8, 1741669661670),
        AmendmentRow("BTCUSDT", 9, 25, "UQ1", "5uS", 4 * 10**8, 3 * 10**8, 1741672924895),
    ]
    record = Record(rows)
    deps = h.Deps(FakeView(), FakeBus(), FakeKeys(), lambda: NOW, history=cast(Any, record))
    params = {"symbol": "BTCUSDT", "orderId": 9, "fromExecutionId": 23, "limit": 5000}
    body = am.order_amendments(signed_request(params), deps)
    assert record.asked == [(7, "BTCUSDT", 9, 23, 1000)]
    assert body == [
        {
            "symbol": "BTCUSDT",
            "orderId": 9,
            "executionId": 25,
            "origClientOrderId": "UQ1",
            "newClientOrderId": "5uS",
            "origQty": "4.00000000",
            "newQty": "3.00000000",
            "time": 1741672924895,
        }
    ]
    with pytest.raises(BinanceError) as err:
        am.order_amendments(signed_request({"symbol": "BTCUSDT"}), deps)
    assert err.value.code == -1102
    with pytest.raises(BinanceError) as err:
        am.order_amendments(signed_request({"symbol": "NOPE", "orderId": 9}), deps)
    assert err.value.code == -1121


def test_weights_are_binances() -> None:
    assert WEIGHTS[("PUT", "/api/v3/order/amend/keepPriority")] == 4
    assert WEIGHTS[("GET", "/api/v3/order/amendments")] == 4
