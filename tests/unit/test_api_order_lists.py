"""Order lists over REST (POST /api/v3/orderList/oco|oto|otoco, DELETE /api/v3/orderList, GET
orderList / allOrderList / openOrderList), the recorder's rows and the user data stream's
listStatus: Binance's parameters, errors and shapes, over a real engine (the bus runs it)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.api import handlers as h
from bourse.api import order_lists as ol
from bourse.api.params import Params
from bourse.api.routes import ORDER_PLACEMENT, WEIGHTS
from bourse.domain.commands import CancelOrderList, Command, NewOrderList
from bourse.domain.errors import BinanceError
from bourse.domain.events import ExecutionReport, ListStatus, Reply
from bourse.record.rows import ORDER_COLUMNS, ORDER_LIST_COLUMNS, map_events
from bourse.record.views import OrderListRow
from bourse.streams.payloads import execution_report, list_status
from tests.unit.test_api_handlers import NOW, FakeBus, FakeKeys, FakeView, signed_request
from tests.unit.test_engine_helpers import SYMBOL, Bench, of

pytestmark = pytest.mark.unit

SEEN: list[Any] = []  # the last command's events


def engine_deps() -> tuple[h.Deps, Bench, list[Command]]:
    bench = Bench(accounts=7)
    bench.order(1, "SELL", 1, 100)
    bench.order(2, "BUY", 1, 100)  # last price 100
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


OCO = {
    "symbol": "BTCUSDT",
    "side": "SELL",
    "quantity": "0.5",
    "listClientOrderId": "bracket",
    "aboveType": "LIMIT_MAKER",
    "abovePrice": "110",
    "aboveClientOrderId": "tp",
    "belowType": "STOP_LOSS_LIMIT",
    "belowPrice": "89",
    "belowStopPrice": "90",
    "belowTimeInForce": "GTC",
    "belowClientOrderId": "sl",
}


def test_oco_answers_as_binance_documents() -> None:
    deps, bench, sent = engine_deps()
    body = ol.new_oco(signed_request(OCO), deps)
    (cmd,) = sent
    assert isinstance(cmd, NewOrderList) and cmd.kind == "OCO" and cmd.account_id == 7
    assert [leg.client_order_id for leg in cmd.orders] == ["tp", "sl"]
    assert {k: body[k] for k in body if k not in ("orders", "orderReports")} == {
        "orderListId": 0,
        "contingencyType": "OCO",
        "listStatusType": "EXEC_STARTED",
        "listOrderStatus": "EXECUTING",
        "listClientOrderId": "bracket",
        "transactionTime": NOW,
        "symbol": "BTCUSDT",
    }
    # The stop-loss leg first, as in Binance's example.
    assert body["orders"] == [
        {"symbol": "BTCUSDT", "orderId": 3, "clientOrderId": "sl"},
        {"symbol": "BTCUSDT", "orderId": 4, "clientOrderId": "tp"},
    ]
    stop, maker = body["orderReports"]
    assert stop["orderListId"] == 0 and stop["type"] == "STOP_LOSS_LIMIT"
    assert stop["stopPrice"] == "90.00000000" and stop["workingTime"] == -1
    assert maker["type"] == "LIMIT_MAKER" and maker["status"] == "NEW"
    assert maker["workingTime"] == NOW and "fills" not in maker  # RESULT by default
    assert bench.locked(7, "BTC") == 50 * 10**6  # locked once


def test_cancel_list_answers_with_every_order_cancelled() -> None:
    deps, _bench, sent = engine_deps()
    ol.new_oco(signed_request(OCO), deps)
    params = {"symbol": "BTCUSDT", "listClientOrderId": "bracket", "newClientOrderId": "bye"}
    body = ol.cancel_order_list(signed_request(params), deps)
    assert isinstance(sent[-1], CancelOrderList)
    assert (body["listStatusType"], body["listOrderStatus"]) == ("ALL_DONE", "ALL_DONE")
    reports = body["orderReports"]
    assert [r["status"] for r in reports] == ["CANCELED", "CANCELED"]
    assert [r["origClientOrderId"] for r in reports] == ["sl", "tp"]
    assert {r["clientOrderId"] for r in reports} == {"bye"}
    with pytest.raises(BinanceError) as err:
        ol.cancel_order_list(signed_request({"symbol": "BTCUSDT", "orderListId": 0}), deps)
    assert (err.value.code, err.value.msg) == (-2011, "Unknown order sent.")
    with pytest.raises(BinanceError) as err:
        ol.cancel_order_list(signed_request({"symbol": "BTCUSDT"}), deps)
    assert err.value.code == -1102


def test_oto_and_otoco_parameters() -> None:
    deps, _bench, sent = engine_deps()
    oto = {
        "symbol": "BTCUSDT",
        "workingType": "LIMIT",
        "workingSide": "BUY",
        "workingPrice": "95",
        "workingQuantity": "0.1",
        "workingTimeInForce": "GTC",
        "pendingType": "LIMIT_MAKER",
        "pendingSide": "SELL",
        "pendingPrice": "120",
        "pendingQuantity": "0.1",
        "newOrderRespType": "ACK",
    }
    body = ol.new_oto(signed_request(oto), deps)
    assert body["contingencyType"] == "OTO"
    assert [set(r) for r in body["orderReports"]] == [
        {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    ] * 2
    otoco = {k: v for k, v in oto.items() if not k.startswith(("pending", "newOrderResp"))}
    otoco.update(
        {
            "pendingSide": "SELL",
            "pendingQuantity": "0.1",
            "pendingAboveType": "LIMIT_MAKER",
            "pendingAbovePrice": "120",
            "pendingBelowType": "STOP_LOSS",
            "pendingBelowStopPrice": "90",
            "workingClientOrderId": "w2",
        }
    )
    body = ol.new_otoco(signed_request(otoco), deps)
    cmd = sent[-1]
    assert isinstance(cmd, NewOrderList) and cmd.kind == "OTOCO" and len(cmd.orders) == 3
    assert [r["type"] for r in body["orderReports"]] == ["LIMIT", "STOP_LOSS", "LIMIT_MAKER"]
    assert [r["status"] for r in body["orderReports"]] == ["NEW", "PENDING_NEW", "PENDING_NEW"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"aboveType": "LIMIT"}, -1158),
        ({"side": "BUY"}, -1165),  # a buy OCO's limit maker must be below
        ({"abovePrice": "99"}, -2010),  # the price relationship
        ({"aboveSide": "BUY"}, -1104),  # an OCO names its side once
        ({"aboveTrailingDelta": "100"}, -2010),  # trailing legs: not built
        ({"listClientOrderId": "bad id!"}, -1100),
        ({"belowTimeInForce": None}, -1102),
        ({"quantity": None}, -1102),
    ],
)
def test_oco_refusals(change: dict[str, Any], code: int) -> None:
    deps, bench, _sent = engine_deps()
    params = {k: v for k, v in {**OCO, **change}.items() if v is not None}
    with pytest.raises(BinanceError) as err:
        ol.new_oco(signed_request(params), deps)
    assert err.value.code == code
    assert bench.locked(7, "BTC") == 0


class Record:
    """The record's reads, as RecordHistory answers them."""

    def __init__(self, rows: list[OrderListRow]) -> None:
        self.rows = rows
        self.asked: list[tuple[Any, ...]] = []

    def order_list(
        self, account_id: int, order_list_id: int | None, list_client_order_id: str | None
    ) -> OrderListRow | None:
        self.asked.append(("one", account_id, order_list_id, list_client_order_id))
        found = [
            r for r in self.rows
            if order_list_id in (None, r.order_list_id)
            and list_client_order_id in (None, r.list_client_order_id)
        ]  # fmt: skip
        return found[-1] if found else None

    def order_lists(self, account_id: int, *, from_id: int | None, start_time: int | None,
                    end_time: int | None, limit: int) -> list[OrderListRow]:  # fmt: skip
        self.asked.append(("all", account_id, from_id, start_time, end_time, limit))
        return self.rows[:limit]

    def open_order_lists(self, account_id: int) -> list[OrderListRow]:
        self.asked.append(("open", account_id))
        return [r for r in self.rows if r.list_order_status == "EXECUTING"]


ROWS = [
    OrderListRow(27, 7, "LTCBTC", "OCO", "EXEC_STARTED", "EXECUTING", "h2U", 1565245656253,
                 [(4, "qD1"), (5, "ARz")]),
    OrderListRow(28, 7, "LTCBTC", "OTO", "ALL_DONE", "ALL_DONE", "hG7", 1565245913407,
                 [(6, "j6l"), (7, "z0K")]),
]  # fmt: skip


def test_queries_read_the_record() -> None:
    record = Record(ROWS)
    deps = h.Deps(FakeView(), FakeBus(), FakeKeys(), lambda: NOW, history=cast(Any, record))
    one = ol.query_order_list(signed_request({"orderListId": 27}), deps)
    assert one == {
        "orderListId": 27,
        "contingencyType": "OCO",
        "listStatusType": "EXEC_STARTED",
        "listOrderStatus": "EXECUTING",
        "listClientOrderId": "h2U",
        "transactionTime": 1565245656253,
        "symbol": "LTCBTC",
        "orders": [
            {"symbol": "LTCBTC", "orderId": 4, "clientOrderId": "qD1"},
            {"symbol": "LTCBTC", "orderId": 5, "clientOrderId": "ARz"},
        ],
    }
    by_client = ol.query_order_list(signed_request({"origClientOrderId": "hG7"}), deps)
    assert by_client["orderListId"] == 28
    assert [b["orderListId"] for b in ol.open_order_lists(signed_request({}), deps)] == [27]
    all_lists = ol.all_order_lists(signed_request({"fromId": 1, "limit": 5000}), deps)
    assert [b["orderListId"] for b in all_lists] == [27, 28]
    assert ("all", 7, 1, None, None, 1000) in record.asked
    for params, code in (
        ({}, -1102),
        ({"orderListId": 99}, -2013),
    ):
        with pytest.raises(BinanceError) as err:
            ol.query_order_list(signed_request(params), deps)
        assert err.value.code == code
    for params, code in (
        ({"fromId": 1, "startTime": 5}, -1128),
        ({"startTime": 0, "endTime": 24 * 3600 * 1000 + 1}, -1130),
    ):
        with pytest.raises(BinanceError) as err:
            ol.all_order_lists(signed_request(params), deps)
        assert err.value.code == code


def test_weights_and_order_counting() -> None:
    assert WEIGHTS[("POST", "/api/v3/orderList/oco")] == 1
    assert WEIGHTS[("DELETE", "/api/v3/orderList")] == 1
    assert WEIGHTS[("GET", "/api/v3/orderList")] == 4
    assert WEIGHTS[("GET", "/api/v3/allOrderList")] == 20
    assert WEIGHTS[("GET", "/api/v3/openOrderList")] == 6
    assert ("POST", "/api/v3/orderList/otoco") in ORDER_PLACEMENT


def test_recorder_rows_and_user_data_stream() -> None:
    deps, _bench, _sent = engine_deps()
    ol.new_oco(signed_request(OCO), deps)
    events = list(SEEN)
    rows = map_events(events, {SYMBOL: ("BTC", "USDT")}, start_after=events[0].seq - 1)
    (row,) = rows.order_lists.values()
    stored = dict(zip(ORDER_LIST_COLUMNS, row, strict=True))
    assert stored["order_list_id"] == 0 and stored["list_order_status"] == "EXECUTING"
    assert json.loads(str(stored["orders"])) == [[3, "sl"], [4, "tp"]]
    order_row = dict(zip(ORDER_COLUMNS, rows.orders[(SYMBOL, 3)], strict=True))
    assert order_row["order_list_id"] == 0
    (status,) = of(events, ListStatus)
    payload = list_status(status)
    assert {k: payload[k] for k in ("e", "s", "g", "c", "l", "L", "r", "C")} == {
        "e": "listStatus",
        "s": "BTCUSDT",
        "g": 0,
        "c": "OCO",
        "l": "EXEC_STARTED",
        "L": "EXECUTING",
        "r": "NONE",
        "C": "bracket",
    }
    assert payload["O"] == [
        {"s": "BTCUSDT", "i": 3, "c": "sl"},
        {"s": "BTCUSDT", "i": 4, "c": "tp"},
    ]
    report = of(events, ExecutionReport)[0]
    assert execution_report(report)["g"] == 0


@settings(max_examples=40, deadline=None)
@given(
    names=st.sets(
        st.sampled_from(sorted(ol.OCO_PARAMS | ol.OTO_PARAMS | ol.OTOCO_PARAMS)), max_size=6
    ),
    kind=st.sampled_from(["OCO", "OTO", "OTOCO"]),
)
def test_any_parameter_set_is_an_answer_or_a_binance_error(names: set[str], kind: str) -> None:
    """Whatever a client sends, the parser builds a command or raises a BinanceError."""
    params = {n: "1" for n in names if n not in ("timestamp", "signature", "recvWindow")}
    try:
        cmd, _ = ol.parse_order_list(
            Params({k: str(v) for k, v in params.items()}), kind, account_id=7,
            request_id="r", ts=NOW,
        )  # fmt: skip
    except BinanceError as err:
        assert err.code < 0
    else:
        assert cmd.kind == kind
