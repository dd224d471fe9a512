"""Issue 15, items 2 and 16, without a stack.

Item 2: a command that may have reached the log answers -1007 (status unknown), never -1001
("try again"): a send whose confirmation times out or fails, and a reply wait that Redis
breaks. A failure certain to come before the produce stays -1001.

Item 16: reads after an answer reflect it: GET order finds a just-closed order in the live
view's recently closed orders rather than the lagging record, and myTrades merges the live
view's recent fills with the record so that the answer is the one the whole truth gives.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, cast

import pytest
import redis.exceptions
from confluent_kafka import KafkaError
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.adapters import recent_view
from bourse.adapters.live_api import KafkaCommandBus
from bourse.api import handlers as h
from bourse.api import history as hist
from bourse.api.app import build
from bourse.api.routes import ORDERS
from bourse.domain.enums import ExecutionType, OrderStatus
from bourse.domain.errors import BinanceError
from bourse.domain.events import ExecutionReport
from bourse.record.views import AccountTradeRow, OrderRow
from matching_service.redis_view import HashOps
from tests.unit.test_api_handlers import (
    KEY,
    LIMIT,
    NOW,
    FakeView,
    _proxy_event,
    deps,
    result,
    signed_request,
)

pytestmark = pytest.mark.unit


# ------------------------------------------------------------------ item 2: -1007 vs -1001


class Producer:
    """``produce`` raises ``on_send``; the delivery report, served by ``poll``, carries
    ``on_delivery`` (None: delivered); ``unacked`` never reports at all."""

    def __init__(
        self,
        *,
        on_send: Exception | None = None,
        on_delivery: KafkaError | None = None,
        unacked: bool = False,
    ):
        self.on_send, self.on_delivery, self.unacked = on_send, on_delivery, unacked
        self.sent = 0
        self.reports: list[Any] = []

    def produce(self, topic: str, value: bytes, partition: int, on_delivery: Any) -> None:
        if self.on_send is not None:
            raise self.on_send
        self.sent += 1
        if not self.unacked:
            self.reports.append(on_delivery)

    def poll(self, timeout: float) -> int:
        reports, self.reports = self.reports, []
        for report in reports:
            report(self.on_delivery, None)
        return len(reports)


class Redis:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def blpop(self, keys: list[str], timeout: float) -> Any:
        if self.error is not None:
            raise self.error
        return None


def _bus_deps(producer: Producer, client: Redis) -> h.Deps:
    return replace(deps(), bus=KafkaCommandBus(producer, client, "bourse.commands", 50))


@pytest.mark.parametrize(
    ("producer", "client"),
    [
        (Producer(unacked=True), Redis()),
        (Producer(on_delivery=KafkaError(KafkaError._MSG_TIMED_OUT)), Redis()),
        (Producer(on_delivery=KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION)), Redis()),
        (Producer(), Redis(redis.exceptions.TimeoutError("read timed out"))),
        (Producer(), Redis(redis.exceptions.ConnectionError("connection reset"))),
        (Producer(), Redis()),  # no reply within the timeout
    ],
    ids=["no-ack-yet", "send-timeout", "send-error", "redis-timeout", "redis-down", "no-reply"],
)
def test_a_command_that_may_be_in_the_log_is_status_unknown(
    producer: Producer, client: Redis
) -> None:
    with pytest.raises(BinanceError) as caught:
        h.new_order(signed_request(LIMIT, body=True), _bus_deps(producer, client))
    assert (caught.value.code, caught.value.http_status) == (-1007, 503)
    assert producer.sent == 1


def test_through_the_resolver_unknown_is_1007_and_before_the_produce_is_1001() -> None:
    def answer(producer: Producer) -> tuple[int, int]:
        app = build(ORDERS, lambda: _bus_deps(producer, Redis()))
        req = signed_request(LIMIT, body=True)
        event = _proxy_event("POST", "/api/v3/order")
        event["body"] = req.body
        event["headers"] = {"X-MBX-APIKEY": KEY}
        event["multiValueHeaders"] = {"X-MBX-APIKEY": [KEY]}
        event["requestContext"]["authorizer"] = {
            "principalId": "7", "accountId": "7", "permissions": "TRADE,USER_DATA",
        }  # fmt: skip
        got = app.resolve(event, cast(Any, {}))
        return got["statusCode"], json.loads(got["body"])["code"]

    assert answer(Producer(on_delivery=KafkaError(KafkaError._MSG_TIMED_OUT))) == (503, -1007)
    # produce() refused the record (its queue full): nothing left, try again.
    assert answer(Producer(on_send=BufferError("Local: Queue full"))) == (500, -1001)


# ------------------------------------------------------------------ item 16: read-your-writes


def _row(status: str, executed: int, update_ts: int) -> OrderRow:
    return OrderRow(
        "BTCUSDT", 3, "cid", "BUY", "LIMIT", "GTC", 1_000_000, 3_000_000_000_000, 0, 0, 0,
        "EXPIRE_MAKER", status, executed, 0, status == "NEW", NOW, NOW, update_ts,
    )  # fmt: skip


class Recent:
    def __init__(self, closed: list[OrderRow], fills: list[AccountTradeRow]) -> None:
        self.closed, self.recent_fills = closed, fills

    def closed_order(
        self, account_id: int, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> OrderRow | None:
        hits = [r for r in self.closed if order_id in (None, r.order_id)
                and (order_id is not None or r.client_order_id == client_order_id)]  # fmt: skip
        return max(hits, key=lambda r: r.order_id, default=None)

    def closed_orders(self, account_id: int, symbol: str) -> list[OrderRow]:
        return list(self.closed)

    def fills(self, account_id: int, symbol: str) -> list[AccountTradeRow]:
        return list(self.recent_fills)


class History:
    """The record: account trades in (trade_id, is_buyer) order; orders by id."""

    def __init__(self, trades: list[AccountTradeRow], orders: list[OrderRow] = ()) -> None:  # type: ignore[assignment]
        self.trades, self.rows = trades, list(orders)

    def order(
        self, account_id: int, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> OrderRow | None:
        hits = [r for r in self.rows if order_id in (None, r.order_id)]
        return hits[-1] if hits else None

    def account_trades(
        self, account_id: int, symbol: str, *, order_id: int | None, from_id: int | None,
        start: int | None, end: int | None, limit: int, newest: bool,
    ) -> list[AccountTradeRow]:  # fmt: skip
        rows = [
            t for t in self.trades
            if (order_id is None or t.order_id == order_id)
            and (from_id is None or t.trade_id >= from_id)
            and (start is None or t.ts >= start) and (end is None or t.ts <= end)
        ]  # fmt: skip
        return rows[-limit:] if newest else rows[:limit]


def test_a_just_cancelled_order_reads_cancelled_not_the_record_s_new() -> None:
    view = FakeView()  # the order left the open orders with the cancel's reply
    history = History([], [_row("NEW", 0, NOW)])  # the recorder has not caught up
    d = replace(deps(view=view), history=cast(Any, history),
                recent=Recent([_row("CANCELED", 0, NOW + 5)], []))  # fmt: skip
    for ids in ({"orderId": 3}, {"origClientOrderId": "cid"}):
        got = h.query_order(signed_request({"symbol": "BTCUSDT", **ids}), d)
        assert (got["status"], got["updateTime"]) == ("CANCELED", NOW + 5)


def test_an_open_order_still_reads_from_the_open_orders() -> None:
    view = FakeView()
    view.orders[7] = [result(OrderStatus.PARTIALLY_FILLED)]
    d = replace(deps(view=view), recent=Recent([_row("CANCELED", 0, NOW - 5)], []))
    got = h.query_order(signed_request({"symbol": "BTCUSDT", "orderId": 3}), d)
    assert got["status"] == "PARTIALLY_FILLED"


def _trade(trade_id: int, is_buyer: bool) -> AccountTradeRow:
    return AccountTradeRow("BTCUSDT", trade_id, 100 + trade_id % 3, is_buyer, not is_buyer,
                           3_000_000_000_000, 1_000, 30_000_000, 1, "BTC",
                           NOW + trade_id)  # fmt: skip


_QUERIES = st.sampled_from(
    [{}, {"orderId": "101"}, {"fromId": "4"}, {"startTime": str(NOW + 3)},
     {"endTime": str(NOW + 9)}, {"startTime": str(NOW + 2), "endTime": str(NOW + 12)},
     {"orderId": "102", "fromId": "5"}]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    trades=st.lists(st.tuples(st.integers(1, 20), st.booleans()), unique=True, max_size=25),
    lag=st.integers(0, 25),
    overlap=st.integers(0, 5),
    query=_QUERIES,
    limit=st.integers(1, 8),
)
def test_my_trades_with_a_lagging_record_answers_as_the_whole_record_would(
    trades: list[tuple[int, bool]], lag: int, overlap: int, query: dict[str, str], limit: int
) -> None:
    """The record holds all but the newest ``lag`` fills; the live view holds the newest ones
    (and ``overlap`` that the record has too): the merge is what the caught-up record gives."""
    rows = sorted((_trade(t, b) for t, b in trades), key=lambda r: (r.trade_id, r.is_buyer))
    cut = max(0, len(rows) - lag)
    lagging = replace(deps(), history=cast(Any, History(rows[:cut])),
                      recent=Recent([], rows[max(0, cut - overlap):]))  # fmt: skip
    caught_up = replace(deps(), history=cast(Any, History(rows)), recent=Recent([], []))
    req = signed_request({"symbol": "BTCUSDT", "limit": str(limit), **query})
    assert hist.my_trades(req, lagging) == hist.my_trades(req, caught_up)


def _report(status: OrderStatus, exec_type: ExecutionType, seq: int) -> ExecutionReport:
    info = result().order
    return ExecutionReport(
        seq, NOW + seq, info, exec_type, status, "NONE", 1_000, 3_000_000_000_000, 30_000_000,
        1_000_000, 30_000_000_000, 1_000, "BTC", seq, True, False, NOW,
    )  # fmt: skip


def test_a_closing_report_moves_the_order_to_the_recently_closed_in_the_same_write() -> None:
    partial = _report(OrderStatus.PARTIALLY_FILLED, ExecutionType.TRADE, 5)
    filled = _report(OrderStatus.FILLED, ExecutionType.TRADE, 6)
    ops = HashOps.from_events({(7, "BTCUSDT", 3): filled}, {}, {}, {}, fills=[partial, filled])
    assert ("account:{7}:orders", "BTCUSDT:3") in ops.hdel
    ((account, name, seq, row),) = ops.closed
    assert (account, name, seq) == (7, "BTCUSDT:3", 6)
    assert json.loads(row)["status"] == "FILLED"
    assert recent_view.closed_order(filled).update_ts == NOW + 6
    assert [json.loads(r)["trade_id"] for _, r in ops.fills] == [5, 6]
    still_open = HashOps.from_events({(7, "BTCUSDT", 3): partial}, {}, {}, {})
    assert still_open.closed == [] and still_open.fills == []
