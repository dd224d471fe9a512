"""What the drill checks once every service is back and the record has caught up.

The truth is the record (PostgreSQL, written by the recorder from bourse.events) and the
events topic itself. Every client answer is held against it:

* 200 with an order: the order is in the record, once, with the same id, an executed quantity
  at least the answer's, and a status the answered one can lead to;
* an error other than -1007: no order with that client order id exists (nothing was placed);
  for a cancel, the order was not cancelled; and the error must be true: -1121 "Invalid
  symbol" for a market listed all along, or -2011 "Unknown order" for an order that is still
  open at the end, is a wrong answer;
* -1007, a gateway 5xx or no answer at all: GET /api/v3/order?origClientOrderId= must answer
  the truth (the order as the record has it, or -2013 and nothing in the record); when it
  cannot be asked, the answer stays unresolved.

Balances: what GET /api/v3/account answers each client (the live view in Redis) is what the
record holds, to the unit.

Events: the topic's seqs are consecutive (no gap, no duplicate), the recorder applied them
all (no record_gaps, its high-water mark at the topic's last seq), and every execution report
and trade of the topic is in the record.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from kafka import TopicPartition

from bench.chaos.traffic import Answer
from bourse.adapters import kafka
from bourse.domain.amounts import parse_units
from bourse.domain.event_codec import decode_events
from bourse.domain.events import ExecutionReport, Trade

TERMINAL = ("FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH")
TIMEOUT_CODE = -1007
UNKNOWN_ORDER = -2013
UNKNOWN_CANCEL = -2011
INVALID_SYMBOL = -1121
OPEN = ("NEW", "PARTIALLY_FILLED")
# How long a query may keep failing (-1007, 5xx, no answer) before the answer is unresolved.
RESOLVE_SECONDS = 60.0


@dataclass(frozen=True)
class RecordedOrder:
    order_id: int
    status: str
    executed_qty: int


@dataclass
class Findings:
    lost: int = 0
    duplicated: int = 0
    wrong_answers: int = 0
    unresolved: int = 0
    notes: list[str] = field(default_factory=list)

    def note(self, counter: str, text: str) -> None:
        setattr(self, counter, getattr(self, counter) + 1)
        self.notes.append(f"{counter}: {text}")


@dataclass(frozen=True)
class TopicScan:
    seqs: list[int]
    execution_reports: set[int]
    trades: set[tuple[str, int]]

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0


def scan_topic(topic: str) -> TopicScan:
    consumer = kafka.consumer(group_id=None)
    partition = TopicPartition(topic, 0)
    seqs: list[int] = []
    reports: set[int] = set()
    trades: set[tuple[str, int]] = set()
    try:
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        end = consumer.end_offsets([partition])[partition]
        while consumer.position(partition) < end:
            for records in consumer.poll(timeout_ms=1000, max_records=2000).values():
                for record in records:
                    for event in decode_events(record.value):
                        seqs.append(event.seq)
                        if isinstance(event, ExecutionReport):
                            reports.add(event.seq)
                        elif isinstance(event, Trade):
                            trades.add((event.symbol, event.trade_id))
    finally:
        consumer.close(autocommit=False)
    return TopicScan(seqs, reports, trades)


def check_sequence(scan: TopicScan, found: Findings) -> None:
    previous = 0
    for seq in scan.seqs:
        if seq <= previous:
            found.note("duplicated", f"event seq {seq} after {previous} in the events topic")
            continue
        if seq != previous + 1:
            found.lost += seq - previous - 1
            found.notes.append(f"lost: events {previous + 1}..{seq - 1} missing from the topic")
        previous = seq


def recorder_seq(dsn: str, consumer: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT last_seq FROM applied_events WHERE consumer = %s", (consumer,)
        ).fetchone()
    return int(row[0]) if row else 0


def check_record(dsn: str, consumer: str, scan: TopicScan, found: Findings) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for from_seq, to_seq in conn.execute("SELECT from_seq, to_seq FROM record_gaps"):
            found.lost += int(to_seq) - int(from_seq) + 1
            found.notes.append(f"lost: record_gaps {from_seq}..{to_seq}")
        applied = recorder_seq(dsn, consumer)
        if applied != scan.last_seq:
            found.note("lost", f"the recorder is at seq {applied}, the topic at {scan.last_seq}")
        recorded = {int(r[0]) for r in conn.execute("SELECT seq FROM order_events")}
        for seq in sorted(scan.execution_reports - recorded):
            found.note("lost", f"execution report seq {seq} not in order_events")
        trades = {(str(s), int(t)) for s, t in conn.execute("SELECT symbol, trade_id FROM trades")}
        for symbol, trade_id in sorted(scan.trades - trades):
            found.note("lost", f"trade {symbol} {trade_id} not in trades")


def recorded_orders(dsn: str) -> dict[tuple[int, str, str], list[RecordedOrder]]:
    orders: dict[tuple[int, str, str], list[RecordedOrder]] = defaultdict(list)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT account_id, symbol, client_order_id, order_id, status, executed_qty "
            "FROM orders WHERE client_order_id LIKE 'chaos-%'"
        )
        for account, symbol, client_id, order_id, status, executed in rows:
            orders[(int(account), str(symbol), str(client_id))].append(
                RecordedOrder(int(order_id), str(status), int(executed))
            )
    return orders


def is_unknown(answer: Answer) -> bool:
    """No answer, -1007, or a 5xx that is not a Binance error the function chose (-1001 is
    "certain to be before the produce": nothing was placed)."""
    if answer.status is None or answer.body is None:
        return True
    return unknown(answer.status, answer.body)


def unknown(status: int, body: dict[str, Any]) -> bool:
    if body.get("code") == TIMEOUT_CODE:
        return True
    return status >= 500 and "code" not in body


def _leads_to(answered: str, final: str) -> bool:
    if answered in TERMINAL:
        return final == answered
    if answered == "PARTIALLY_FILLED":
        return final != "NEW"
    return True


# account, symbol, client order id -> (HTTP status, body) of GET /api/v3/order, or None
Query = Callable[[int, str, str], tuple[int, dict[str, Any]] | None]


def check_answers(
    answers: Iterable[Answer],
    orders: dict[tuple[int, str, str], list[RecordedOrder]],
    query: Query,
    listed: set[str],
    found: Findings,
) -> None:
    for answer in answers:
        key = (answer.account_id, answer.symbol, answer.client_order_id)
        rows = orders.get(key, [])
        if len(rows) > 1:
            if answer.kind == "place":
                found.note("duplicated", f"{key}: {len(rows)} orders for one request")
            continue
        row = rows[0] if rows else None
        what = f"{answer.transport} {answer.kind} {key} -> {answer.status} {answer.body}"
        if is_unknown(answer):
            _resolve(answer, key, row, query, found, what)
        elif answer.status == 200 and answer.body is not None:
            _check_success(answer, row, found, what)
        else:
            _check_error(answer, row, listed, found, what)


def _check_error(
    answer: Answer, row: RecordedOrder | None, listed: set[str], found: Findings, what: str
) -> None:
    if answer.code == INVALID_SYMBOL and answer.symbol in listed:
        found.note("wrong_answers", f"{what}: the market is listed")
    elif answer.kind == "place" and row is not None:
        found.note("wrong_answers", f"{what}: yet the record has {row}")
    elif answer.kind == "cancel" and row is not None and row.status == "CANCELED":
        found.note("wrong_answers", f"{what}: yet the record has it CANCELED")
    elif answer.code == UNKNOWN_CANCEL and row is not None and row.status in OPEN:
        found.note("wrong_answers", f"{what}: the order is open to this day: {row}")


def _check_success(answer: Answer, row: RecordedOrder | None, found: Findings, what: str) -> None:
    assert answer.body is not None
    if row is None:
        found.note("lost", f"{what}: not in the record")
        return
    status = str(answer.body.get("status"))
    if answer.kind == "cancel":
        if row.status != "CANCELED" or status != "CANCELED":
            found.note("wrong_answers", f"{what}: the record has {row}")
        return
    executed = parse_units(str(answer.body.get("executedQty", "0")))
    if (
        int(answer.body.get("orderId", -1)) != row.order_id
        or row.executed_qty < executed
        or not _leads_to(status, row.status)
    ):
        found.note("wrong_answers", f"{what}: the record has {row}")


def _resolve(
    answer: Answer,
    key: tuple[int, str, str],
    row: RecordedOrder | None,
    query: Query,
    found: Findings,
    what: str,
) -> None:
    deadline = time.monotonic() + RESOLVE_SECONDS
    while True:
        result = query(*key)
        if result is not None:
            break
        if time.monotonic() > deadline:
            found.note("unresolved", f"{what}: GET order never answered")
            return
        time.sleep(1.0)
    status, body = result
    if status == 200:
        if row is None:
            found.note("wrong_answers", f"{what}: GET order says {body}, the record has nothing")
        elif (
            int(body.get("orderId", -1)) != row.order_id
            or str(body.get("status")) != row.status
            or parse_units(str(body.get("executedQty", "0"))) != row.executed_qty
        ):
            found.note("wrong_answers", f"{what}: GET order says {body}, the record has {row}")
    elif body.get("code") == UNKNOWN_ORDER:
        if row is not None:
            found.note("wrong_answers", f"{what}: GET order says -2013, the record has {row}")
    else:
        found.note("unresolved", f"{what}: GET order answered {status} {body}")


# account -> the balances GET /api/v3/account answers, or None when it does not answer
AccountQuery = Callable[[int], dict[str, tuple[int, int]] | None]


def check_balances(dsn: str, accounts: Iterable[int], query: AccountQuery, found: Findings) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for account in accounts:
            rows = conn.execute(
                "SELECT asset, free, locked FROM balances WHERE account_id = %s", (account,)
            )
            recorded = {str(a): (int(f), int(lk)) for a, f, lk in rows if int(f) or int(lk)}
            answered = query(account)
            if answered is None:
                found.note("unresolved", f"GET account of {account} never answered")
            elif answered != recorded:
                found.note(
                    "wrong_answers",
                    f"GET account of {account} says {answered}, the record has {recorded}",
                )
