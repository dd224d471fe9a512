"""newClientOrderId: retries are idempotent while they can be retries, and a client order id
is free again once its order is no longer open (issue 15, item 7).

Binance: "A unique id among open orders ... Orders with the same newClientOrderID can be
accepted only when the previous one is filled, otherwise the order will be rejected" (-2010
"Duplicate order sent."). Bourse keeps a retry of the same request from becoming a second
order while the first attempt is in flight or its order is open (it answers the first
attempt's answer), and otherwise treats the request as the new order Binance would accept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from bourse.adapters.idempotency import Claim, DynamoIdempotency
from bourse.api import handlers as h
from bourse.domain.commands import Command, NewOrder
from bourse.domain.enums import OrderStatus, Outcome
from bourse.domain.errors import BinanceError
from bourse.domain.events import Reply, ReplyPart
from tests.unit.moto_tables import dynamodb_table
from tests.unit.test_api_handlers import (
    LIMIT,
    NOW,
    FakeBus,
    FakeKeys,
    FakeView,
    ok_reply,
    result,
    signed_request,
)

pytestmark = pytest.mark.unit


class Store:
    """The IdempotencyTable's semantics in memory (claim, complete, reclaim)."""

    def __init__(self) -> None:
        self.items: dict[str, list[Any]] = {}

    def _claim(self, key: str) -> Claim:
        rid, status, body = self.items[key]
        return Claim(rid, status, body)

    def claim(self, key: str, request_id: str) -> Claim | None:
        if key in self.items:
            return self._claim(key)
        self.items[key] = [request_id, None, None]
        return None

    def reclaim(self, key: str, old_request_id: str, request_id: str) -> Claim | None:
        if key in self.items and self.items[key][0] != old_request_id:
            return self._claim(key)
        self.items[key] = [request_id, None, None]
        return None

    def complete(self, key: str, status: int, body: str) -> None:
        self.items[key][1:] = [status, body]


class Exchange:
    """The handler with a bus whose orders rest (NEW, listed in the view's open orders) or
    fill at once, and whose engine refuses a client id that is open."""

    def __init__(self, status: OrderStatus = OrderStatus.NEW) -> None:
        self.status = status
        self.view = FakeView()
        self.view.orders[7] = []
        self.bus = FakeBus(self._answer)
        self.replies: dict[str, Reply] = {}
        self.bus.wait = self.replies.get
        self.store = Store()
        ids = iter(f"r{i}" for i in range(1000))
        self.deps = h.Deps(self.view, self.bus, FakeKeys(), lambda: NOW, lambda: next(ids),
                           self.store)  # fmt: skip
        self.next_order_id = 100
        self.reject: str | None = None

    def _answer(self, command: Command) -> Reply | None:
        assert isinstance(command, NewOrder)
        open_ids = {o.order.client_order_id for o in self.view.orders[7]}
        if self.reject is not None or command.client_order_id in open_ids:
            msg = self.reject or "Duplicate order sent."
            reply = Reply(1, command.ts, command.request_id, "NEW_ORDER", -2010, msg, ())
        else:
            self.next_order_id += 1
            base = result(self.status)
            info = msgspec.structs.replace(base.order, order_id=self.next_order_id,
                                           client_order_id=command.client_order_id)  # fmt: skip
            res = msgspec.structs.replace(base, order=info, fills=())
            if self.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
                self.view.orders[7].append(res)
            reply = ok_reply(command, ReplyPart(Outcome.SUCCESS, 0, "", res))
        self.replies[command.request_id] = reply
        return reply

    def close_all(self) -> None:
        self.view.orders[7] = []

    def place(self, params: dict[str, Any]) -> dict[str, Any]:
        return h.new_order(signed_request(params, body=True), self.deps)

    @property
    def sent(self) -> int:
        return len(self.bus.sent)


ORDER = {**LIMIT, "newClientOrderId": "reuse-me", "newOrderRespType": "RESULT"}


def test_a_retry_while_the_order_is_open_gets_the_first_answer() -> None:
    ex = Exchange(OrderStatus.NEW)
    first = ex.place(ORDER)
    assert ex.place(ORDER) == first and ex.place(ORDER) == first
    assert ex.sent == 1


def test_the_same_request_after_the_order_closed_is_a_new_order() -> None:
    """The defect: the old answer came back, and no order was placed."""
    ex = Exchange(OrderStatus.NEW)
    first = ex.place(ORDER)
    ex.close_all()  # filled or cancelled since
    second = ex.place(ORDER)
    assert ex.sent == 2
    assert second["orderId"] != first["orderId"]
    assert second["clientOrderId"] == "reuse-me"
    # ... and that one is open now: its retry is answered as it was.
    assert ex.place(ORDER) == second and ex.sent == 2


def test_an_order_closed_in_its_own_answer_frees_its_id_at_once() -> None:
    ex = Exchange(OrderStatus.FILLED)  # a marketable order, filled by its own command
    first = ex.place(ORDER)
    second = ex.place(ORDER)
    assert ex.sent == 2 and second["orderId"] == first["orderId"] + 1


def test_a_rejected_request_is_evaluated_again() -> None:
    """Nothing was placed, so nothing is open: the same request is tried again (the balance
    may have arrived since), not answered with the old rejection."""
    ex = Exchange(OrderStatus.NEW)
    ex.reject = "Account has insufficient balance for requested action."
    with pytest.raises(BinanceError) as exc:
        ex.place(ORDER)
    assert exc.value.code == -2010
    ex.reject = None
    assert ex.place(ORDER)["status"] == "NEW"
    assert ex.sent == 2


def test_a_retry_while_the_first_attempt_is_in_flight_waits_for_it() -> None:
    ex = Exchange(OrderStatus.FILLED)
    answers = iter([None])  # the first attempt's reply does not arrive in time: -1007

    def slow(command: Command) -> Reply | None:
        reply = ex._answer(command)
        return next(answers, reply)

    ex.bus.answer = slow
    with pytest.raises(BinanceError) as exc:
        ex.place(ORDER)
    assert exc.value.code == -1007
    # The retry sends nothing and answers the first attempt's order, although it is FILLED:
    # the client never had that answer.
    answer = ex.place(ORDER)
    assert ex.sent == 1 and answer["orderId"] == 101 and answer["status"] == "FILLED"
    # Once answered and closed, the id is free again.
    assert ex.place(ORDER)["orderId"] == 102 and ex.sent == 2


def test_another_order_reusing_an_open_id_is_duplicate() -> None:
    ex = Exchange(OrderStatus.NEW)
    ex.place(ORDER)
    with pytest.raises(BinanceError) as exc:
        ex.place({**ORDER, "price": "30001"})
    assert (exc.value.code, exc.value.msg) == (-2010, "Duplicate order sent.")


def test_two_retries_after_close_make_one_order() -> None:
    """Two retries that both find the closed answer: one reclaims the key and places the
    order; the other finds that claim (in flight) and waits for its answer."""
    ex = Exchange(OrderStatus.NEW)
    ex.place(ORDER)
    ex.close_all()
    (key,) = ex.store.items
    stale = ex.store._claim(key)
    # A concurrent retry took the key first (its command went to the log).
    assert ex.store.reclaim(key, stale.request_id, "other") is None
    sample = result().order
    other = NewOrder(request_id="other", ts=NOW, account_id=7, symbol="BTCUSDT",
                     side=sample.side, type=sample.type, client_order_id="reuse-me")  # fmt: skip
    ex._answer(other)
    answer = ex.place(ORDER)
    assert ex.sent == 1  # only the first order went through this bus; "other" is the second
    assert answer["orderId"] == 102


# ------------------------------------------------------------------ the DynamoDB adapter


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoIdempotency]:
    with dynamodb_table(monkeypatch, "idem", "id"):
        yield DynamoIdempotency("idem", 600, "scope")


def test_dynamo_reclaim_is_conditional_on_the_claim_seen(table: DynamoIdempotency) -> None:
    assert table.claim("k", "r1") is None
    table.complete("k", 200, json.dumps({"orderId": 1}))
    seen = table.claim("k", "r2")
    assert seen is not None and (seen.request_id, seen.status) == ("r1", 200)
    # Two retries saw r1's answer; the first to reclaim wins, the other gets its claim.
    assert table.reclaim("k", "r1", "r2") is None
    lost = table.reclaim("k", "r1", "r3")
    assert lost is not None and (lost.request_id, lost.status, lost.body) == ("r2", None, None)
    assert table.reclaim("never-claimed", "x", "r4") is None
