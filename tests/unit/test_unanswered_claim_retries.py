"""A retry of a newClientOrderId request whose first attempt was never answered resolves to
the truth (issue 15, item 2): it waits for the first attempt's reply while that command may
still execute, and once the command has settled (executed, or refused as late by the engine:
``bourse.api.retries``) it answers the first attempt's order, or, when there is none, places
its own, exactly once. Before, such a claim blocked every retry (-1007) until it expired
(600 s), and forever after the reply list expired (60 s).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.adapters.idempotency import Claim, DynamoIdempotency
from bourse.api import handlers as h
from bourse.api import retries
from bourse.api.auth import Caller
from bourse.domain.commands import Command, NewOrder
from bourse.domain.enums import OrderStatus, Outcome
from bourse.domain.errors import BinanceError
from bourse.domain.events import Reply, ReplyPart
from bourse.record.views import AccountTradeRow, OrderRow
from tests.unit.moto_tables import dynamodb_table
from tests.unit.test_api_handlers import (
    KEY,
    LIMIT,
    NOW,
    SECRET,
    FakeBus,
    FakeKeys,
    FakeView,
    ok_reply,
    result,
)

pytestmark = pytest.mark.unit

ORDER = {**LIMIT, "newClientOrderId": "once-only", "newOrderRespType": "RESULT"}


class Store:
    """The IdempotencyTable in memory, claims stamped with the exchange's clock."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.items: dict[str, list[Any]] = {}
        self.before_reclaim: Any = None

    def _claim(self, key: str) -> Claim:
        rid, status, body, at = self.items[key]
        return Claim(rid, status, body, at)

    def claim(self, key: str, request_id: str) -> Claim | None:
        if key in self.items:
            return self._claim(key)
        self.items[key] = [request_id, None, None, self.clock()]
        return None

    def reclaim(self, key: str, old_request_id: str, request_id: str) -> Claim | None:
        if self.before_reclaim is not None:
            hook, self.before_reclaim = self.before_reclaim, None
            hook()
        if key in self.items and self.items[key][0] != old_request_id:
            return self._claim(key)
        self.items[key] = [request_id, None, None, self.clock()]
        return None

    def complete(self, key: str, status: int, body: str) -> None:
        self.items[key][1:3] = [status, body]


class Recent:
    def __init__(self) -> None:
        self.rows: list[OrderRow] = []

    def closed_order(
        self, account_id: int, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> OrderRow | None:
        rows = [r for r in self.rows if r.client_order_id == client_order_id]
        return max(rows, key=lambda r: r.order_id, default=None)

    def closed_orders(self, account_id: int, symbol: str) -> list[OrderRow]:
        return list(self.rows)

    def fills(self, account_id: int, symbol: str) -> list[AccountTradeRow]:
        return []


class Exchange:
    """The handler over an engine that places each NEW_ORDER it receives (resting, listed in
    the view's open orders; or filled, listed in the recently closed orders), refuses a client
    id that is open, and refuses a command that reaches it after its deadline (-1021). Sent
    commands wait in ``log`` until ``run`` processes them; a reply list can expire."""

    def __init__(self, status: OrderStatus = OrderStatus.NEW) -> None:
        self.now = NOW
        self.status = status
        self.view = FakeView()
        self.view.orders[7] = []
        self.recent = Recent()
        self.log: list[NewOrder] = []
        self.replies: dict[str, Reply] = {}
        self.bus = FakeBus(self._send)
        self.bus.wait = self.replies.get
        self.store = Store(lambda: self.now)
        self.auto_run = True
        ids = iter(f"r{i}" for i in range(1000))
        self.deps = h.Deps(self.view, self.bus, FakeKeys(), lambda: self.now,
                           lambda: next(ids), self.store, recent=self.recent)  # fmt: skip
        self.next_order_id = 100

    def _send(self, command: Command) -> Reply | None:
        assert isinstance(command, NewOrder)
        self.log.append(command)
        if self.auto_run:
            self.run()
        return self.replies.get(command.request_id)

    def run(self) -> None:
        """The matching service processes what is in the log, at ``now``."""
        for command in self.log:
            self.replies[command.request_id] = self._process(command)
        self.log.clear()

    def _process(self, command: NewOrder) -> Reply:
        def refused(code: int, msg: str) -> Reply:
            return Reply(1, command.ts, command.request_id, "NEW_ORDER", code, msg, ())

        if 0 < command.deadline < self.now:
            return refused(-1021, "Timestamp for this request is outside of the recvWindow.")
        if command.client_order_id in {o.order.client_order_id for o in self.view.orders[7]}:
            return refused(-2010, "Duplicate order sent.")
        self.next_order_id += 1
        base = result(self.status)
        info = msgspec.structs.replace(base.order, order_id=self.next_order_id,
                                       client_order_id=command.client_order_id,
                                       created_ts=command.ts)  # fmt: skip
        placed = msgspec.structs.replace(base, order=info, fills=())
        if self.status is OrderStatus.NEW:
            self.view.orders[7].append(placed)
        else:
            self.recent.rows.append(_row(placed))
        return ok_reply(command, ReplyPart(Outcome.SUCCESS, 0, "", placed))

    def place(self, params: dict[str, Any]) -> dict[str, Any]:
        return h.new_order(_signed(params, self.now), self.deps)

    def expire_replies(self) -> None:
        self.replies.clear()

    @property
    def orders_placed(self) -> int:
        return self.next_order_id - 100


def _row(placed: Any) -> OrderRow:
    o = placed.order
    return OrderRow(o.symbol, o.order_id, o.client_order_id, str(o.side), str(o.type),
                    str(o.time_in_force), o.quantity, o.price, 0, 0, 0, str(o.stp_mode),
                    str(placed.status), placed.executed_qty, placed.cum_quote, False,
                    placed.working_ts, o.created_ts, o.created_ts)  # fmt: skip


def _signed(params: dict[str, Any], now: int) -> h.Request:
    payload = urlencode({**params, "timestamp": now - 10})
    payload += "&signature=" + hmac.new(SECRET.encode(), payload.encode(),
                                        hashlib.sha256).hexdigest()  # fmt: skip
    return h.Request("", payload, Caller(7, frozenset({"TRADE", "USER_DATA"}), KEY))


def _unknown(ex: Exchange) -> BinanceError:
    with pytest.raises(BinanceError) as exc:
        ex.place(ORDER)
    return exc.value


def _first_attempt_times_out(ex: Exchange, *, reaches_engine: bool) -> None:
    """The first attempt's command goes to the log, but no reply comes in time: -1007."""
    ex.auto_run = False
    assert _unknown(ex).code == -1007
    if not reaches_engine:
        ex.log.clear()  # never sequenced (lost between the producer and the log)
    ex.auto_run = True


def test_a_retry_while_the_reply_is_there_gets_it_and_sends_nothing() -> None:
    ex = Exchange()
    _first_attempt_times_out(ex, reaches_engine=True)
    ex.run()
    answer = ex.place(ORDER)
    assert answer["orderId"] == 101 and ex.bus.sent.__len__() == 1 and ex.orders_placed == 1


def test_reply_expired_but_the_open_order_is_found() -> None:
    ex = Exchange()
    _first_attempt_times_out(ex, reaches_engine=True)
    ex.run()
    ex.expire_replies()
    ex.now += retries.SETTLE_MS + 1
    answer = ex.place(ORDER)
    assert (answer["orderId"], answer["status"], answer["clientOrderId"]) == (
        101,
        "NEW",
        "once-only",
    )
    assert answer["transactTime"] == NOW and set(answer) >= {"origQty", "workingTime"}
    assert len(ex.bus.sent) == 1 and ex.orders_placed == 1
    # Recorded: the next retry replays it while the order is open.
    assert ex.place(ORDER) == answer and len(ex.bus.sent) == 1


def test_reply_expired_but_the_closed_order_is_found() -> None:
    ex = Exchange(OrderStatus.FILLED)
    _first_attempt_times_out(ex, reaches_engine=True)
    ex.run()
    ex.expire_replies()
    ex.now += retries.SETTLE_MS + 1
    answer = ex.place(ORDER)
    assert (answer["orderId"], answer["status"], answer["executedQty"]) == (
        101,
        "FILLED",
        "0.01000000",
    )
    assert len(ex.bus.sent) == 1 and ex.orders_placed == 1


def test_an_older_closed_order_with_the_same_id_is_not_the_answer() -> None:
    """A client id is reused once its order closed: an order placed before the claim is not
    the first attempt's."""
    ex = Exchange(OrderStatus.FILLED)
    ex.place(ORDER)  # placed and answered long ago
    ex.now += 10 * retries.SETTLE_MS
    ex.store.items.clear()  # that claim expired
    _first_attempt_times_out(ex, reaches_engine=False)
    ex.now += retries.SETTLE_MS + 1
    answer = ex.place(ORDER)
    assert answer["orderId"] == 102 and ex.orders_placed == 2


def test_a_command_never_sequenced_blocks_only_until_it_settles() -> None:
    ex = Exchange()
    _first_attempt_times_out(ex, reaches_engine=False)
    ex.now += retries.SETTLE_MS  # not yet: the command could still reach the engine in time
    assert _unknown(ex).code == -1007
    assert len(ex.bus.sent) == 1
    ex.now += 1
    answer = ex.place(ORDER)
    assert answer["orderId"] == 101 and ex.orders_placed == 1 and len(ex.bus.sent) == 2
    assert ex.place(ORDER) == answer and ex.orders_placed == 1


def test_a_first_command_executed_late_is_refused_and_the_retry_is_the_one_order() -> None:
    """The first command sat in the log through an outage: it reaches the engine after its
    deadline and is refused, so the retry's order is the only one."""
    ex = Exchange()
    _first_attempt_times_out(ex, reaches_engine=True)  # in the log, not processed
    ex.now += retries.SETTLE_MS + 1
    answer = ex.place(ORDER)  # the engine, back, processes both in log order
    assert answer["orderId"] == 101 and ex.orders_placed == 1


def test_two_concurrent_retries_make_one_order() -> None:
    """Both find the settled claim and no order; the first to reclaim places the order, the
    other's reclaim finds that claim, answered, and replays it."""
    ex = Exchange()
    _first_attempt_times_out(ex, reaches_engine=False)
    ex.now += retries.SETTLE_MS + 1
    answers: list[dict[str, Any]] = []
    ex.store.before_reclaim = lambda: answers.append(ex.place(ORDER))
    answers.append(ex.place(ORDER))
    assert answers[0] == answers[1] and ex.orders_placed == 1 and len(ex.bus.sent) == 2


def test_a_duplicate_refusal_after_taking_over_answers_the_late_order() -> None:
    """The settled attempt's order reached the view after the retry looked (a slow batch):
    the engine refuses the retry as a duplicate, and the retry answers that order."""
    ex = Exchange()
    _first_attempt_times_out(ex, reaches_engine=True)
    ex.now += retries.SETTLE_MS + 1
    first = ex.log[0]

    def late_batch() -> None:
        ex.log.clear()
        ex.replies[first.request_id] = ex._process(dataclasses.replace(first, deadline=0))

    ex.store.before_reclaim = late_batch
    answer = ex.place(ORDER)
    assert answer["orderId"] == 101 and ex.orders_placed == 1


@settings(max_examples=150, deadline=None)
@given(
    processed_after=st.one_of(st.none(), st.integers(0, 2 * retries.SETTLE_MS)),
    retry_after=st.integers(0, 2 * retries.SETTLE_MS),
    reply_kept=st.booleans(),
    fills=st.booleans(),
)
def test_a_retry_never_makes_a_second_order_and_answers_the_one(
    processed_after: int | None, retry_after: int, reply_kept: bool, fills: bool
) -> None:
    """Whenever the first command reaches the engine (or never does) and whenever the retry
    comes: at most one order exists, and an answered retry names it."""
    ex = Exchange(OrderStatus.FILLED if fills else OrderStatus.NEW)
    _first_attempt_times_out(ex, reaches_engine=processed_after is not None)
    start = ex.now
    if processed_after is not None and processed_after <= retry_after:
        ex.now = start + processed_after
        ex.run()
        if not reply_kept:
            ex.expire_replies()
    ex.now = start + retry_after
    try:
        answer = ex.place(ORDER)
    except BinanceError as exc:
        assert exc.code == -1007 and retry_after <= retries.SETTLE_MS
        answer = None
    if processed_after is not None and processed_after > retry_after:
        ex.now = max(ex.now, start + processed_after)
        ex.run()
    assert ex.orders_placed <= 1
    if answer is not None:
        assert answer["orderId"] == 101 and ex.orders_placed == 1


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoIdempotency]:
    with dynamodb_table(monkeypatch, "idem", "id"):
        yield DynamoIdempotency("idem", 600, "scope")


def test_dynamo_claims_record_when_they_were_made(table: DynamoIdempotency) -> None:
    before = time.time_ns() // 1_000_000
    assert table.claim("k", "r1") is None
    seen = table.claim("k", "r2")
    after = time.time_ns() // 1_000_000
    assert seen is not None and seen.request_id == "r1" and seen.body is None
    assert seen.claimed_at_ms is not None and before <= seen.claimed_at_ms <= after
    # Taking a settled claim over stamps the new claim.
    assert table.reclaim("k", "r1", "r3") is None
    again = table.claim("k", "r4")
    assert again is not None and again.request_id == "r3"
    assert again.claimed_at_ms is not None and again.claimed_at_ms >= seen.claimed_at_ms
