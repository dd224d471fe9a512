"""The drill's checks (bench/chaos/checks.py) on made-up answers and records: each kind of
defect they exist to catch is counted, and a clean history counts nothing."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.chaos.checks import Findings, RecordedOrder, TopicScan, check_answers, check_sequence
from bench.chaos.traffic import Answer

pytestmark = pytest.mark.unit
KEY = (1001, "BTCUSDT", "chaos-1001-a")
LISTED = {"BTCUSDT"}


def _answer(kind: str, status: int | None, body: dict[str, Any] | None) -> Answer:
    return Answer(kind, "rest", KEY[0], KEY[1], KEY[2], status, body)


def _order(order_id: int = 7, status: str = "NEW", executed: str = "0.00000000") -> dict[str, Any]:
    return {"orderId": order_id, "status": status, "executedQty": executed}


def _check(
    answer: Answer,
    rows: list[RecordedOrder],
    query: tuple[int, dict[str, Any]] | None = None,
) -> Findings:
    found = Findings()
    check_answers([answer], {KEY: rows} if rows else {}, lambda *_: query, LISTED, found)
    return found


def _counts(found: Findings) -> tuple[int, int, int, int]:
    return found.lost, found.duplicated, found.wrong_answers, found.unresolved


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=60))
def test_sequence_gaps_are_lost_and_repeats_duplicated(seqs: list[int]) -> None:
    found = Findings()
    check_sequence(TopicScan(seqs, set(), set()), found)
    expected_lost = expected_dup = previous = 0
    for seq in seqs:
        if seq <= previous:
            expected_dup += 1
        else:
            expected_lost += seq - previous - 1
            previous = seq
    assert (found.lost, found.duplicated) == (expected_lost, expected_dup)


def test_consecutive_seqs_are_clean() -> None:
    found = Findings()
    check_sequence(TopicScan(list(range(1, 100)), set(), set()), found)
    assert _counts(found) == (0, 0, 0, 0)


def test_an_acknowledged_order_missing_from_the_record_is_lost() -> None:
    assert _counts(_check(_answer("place", 200, _order()), [])) == (1, 0, 0, 0)


def test_an_acknowledged_order_as_recorded_is_clean() -> None:
    row = RecordedOrder(7, "FILLED", 1000)
    answer = _answer("place", 200, _order(status="PARTIALLY_FILLED", executed="0.00000500"))
    assert _counts(_check(answer, [row])) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("answered", "recorded"),
    [
        (_order(status="FILLED", executed="0.00001000"), RecordedOrder(7, "CANCELED", 1000)),
        (_order(executed="0.00002000"), RecordedOrder(7, "FILLED", 1000)),  # less executed
        (_order(order_id=8), RecordedOrder(7, "NEW", 0)),
        (_order(status="PARTIALLY_FILLED"), RecordedOrder(7, "NEW", 0)),
    ],
)
def test_an_answer_the_record_contradicts_is_wrong(
    answered: dict[str, Any], recorded: RecordedOrder
) -> None:
    assert _counts(_check(_answer("place", 200, answered), [recorded])) == (0, 0, 1, 0)


def test_one_request_two_orders_is_duplicated() -> None:
    rows = [RecordedOrder(7, "NEW", 0), RecordedOrder(8, "NEW", 0)]
    assert _counts(_check(_answer("place", 200, _order()), rows)) == (0, 1, 0, 0)


def test_an_error_whose_order_exists_is_wrong() -> None:
    answer = _answer("place", 400, {"code": -2010, "msg": "insufficient balance"})
    assert _counts(_check(answer, [RecordedOrder(7, "NEW", 0)])) == (0, 0, 1, 0)
    assert _counts(_check(answer, [])) == (0, 0, 0, 0)


def test_invalid_symbol_for_a_listed_market_is_wrong() -> None:
    answer = _answer("place", 400, {"code": -1121, "msg": "Invalid symbol."})
    assert _counts(_check(answer, [])) == (0, 0, 1, 0)


def test_unknown_order_for_an_order_open_to_the_end_is_wrong() -> None:
    answer = _answer("cancel", 400, {"code": -2011, "msg": "Unknown order sent."})
    assert _counts(_check(answer, [RecordedOrder(7, "NEW", 0)])) == (0, 0, 1, 0)
    assert _counts(_check(answer, [RecordedOrder(7, "FILLED", 10)])) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "answer",
    [
        _answer("place", 503, {"code": -1007, "msg": "Timeout"}),
        _answer("place", None, None),
        _answer("place", 502, {"message": "Internal server error"}),
    ],
)
def test_an_unknown_outcome_is_resolved_by_the_query(answer: Answer) -> None:
    row = RecordedOrder(7, "FILLED", 1000)
    truth = (200, _order(status="FILLED", executed="0.00001000"))
    assert _counts(_check(answer, [row], truth)) == (0, 0, 0, 0)
    assert _counts(_check(answer, [], (400, {"code": -2013}))) == (0, 0, 0, 0)
    # the query contradicts the record
    assert _counts(_check(answer, [row], (400, {"code": -2013}))) == (0, 0, 1, 0)
    assert _counts(_check(answer, [], truth)) == (0, 0, 1, 0)
