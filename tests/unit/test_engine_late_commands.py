"""Late commands (issue: stale commands execute late): a trader's command that reaches the
engine after its request's deadline (``timestamp + recvWindow``) is refused with -1021 and
changes nothing; the sequencer's clock is an input, recorded per batch and replayed."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bourse.api.orders import request_deadline
from bourse.api.params import Params
from bourse.domain.admin_auth import LocalAdminSigner, encode_record
from bourse.domain.codec import decode_command, encode_command
from bourse.domain.commands import (
    AddSymbol,
    CancelAll,
    CancelOrder,
    Command,
    CreateAccount,
    Deposit,
    NewOrder,
)
from bourse.domain.enums import OrderType, Side, TimeInForce
from bourse.domain.events import Reply
from bourse.engine import Engine
from matching_service.clocks import ClockMap, MissingClock, batch_headers, parse_headers
from matching_service.pipeline import run_batch
from tests.unit.test_engine_helpers import E8, LOT, SYMBOL, Bench, spec

pytestmark = pytest.mark.unit


def _order(request_id: str, deadline: int, acct: int = 1, price: int = 100) -> NewOrder:
    return NewOrder(
        request_id, 1, acct, SYMBOL, Side.BUY, OrderType.LIMIT, f"c-{request_id}",
        quantity=10 * LOT, price=price * E8, time_in_force=TimeInForce.GTC, deadline=deadline,
    )  # fmt: skip


def _reply(events: Sequence[object]) -> Reply:
    reply = events[-1]
    assert isinstance(reply, Reply)
    return reply


def test_a_command_after_its_deadline_is_refused_and_changes_nothing() -> None:
    b = Bench()
    balances = b.engine.balances()
    events = b.engine.process(_order("late", deadline=5_000), now=5_001)
    assert len(events) == 1  # the Reply alone: no order, no report, no depth
    reply = _reply(events)
    assert reply.code == -1021
    assert reply.msg == "Timestamp for this request is outside of the recvWindow."
    assert b.engine.open_orders(1) == []
    assert b.engine.balances() == balances


def test_on_time_and_without_a_clock_it_executes() -> None:
    b = Bench()
    assert _reply(b.engine.process(_order("edge", deadline=5_000), now=5_000)).code == 0
    assert _reply(b.engine.process(_order("noclock", deadline=5_000))).code == 0
    assert _reply(b.engine.process(_order("nodeadline", deadline=0), now=9_999_999)).code == 0
    assert len(b.engine.open_orders(1)) == 3


def test_cancels_are_judged_too() -> None:
    b = Bench()
    b.engine.process(_order("place", deadline=0))
    late_cancel = CancelOrder("cx", 2, 1, SYMBOL, orig_client_order_id="c-place", deadline=10)
    assert _reply(b.engine.process(late_cancel, now=11)).code == -1021
    late_all = CancelAll("ca", 3, 1, SYMBOL, deadline=10)
    assert _reply(b.engine.process(late_all, now=11)).code == -1021
    assert len(b.engine.open_orders(1)) == 1


@given(
    deadlines=st.lists(st.integers(min_value=0, max_value=100), min_size=1, max_size=30),
    now=st.integers(min_value=0, max_value=100),
)
def test_refused_exactly_when_late_and_the_rest_as_if_they_never_came(
    deadlines: list[int], now: int
) -> None:
    judged, alone = Bench(), Bench()
    for i, deadline in enumerate(deadlines):
        cmd = _order(f"r{i}", deadline, acct=1 + i % 4, price=90 + i % 20)
        reply = _reply(judged.engine.process(cmd, now=now))
        late = bool(now) and 0 < deadline < now
        assert (reply.code == -1021) == late
        if not late:
            alone.engine.process(cmd)
    assert judged.engine.balances() == alone.engine.balances()
    for acct in range(1, 5):
        assert [r.order for r in judged.engine.open_orders(acct)] == [
            r.order for r in alone.engine.open_orders(acct)
        ]


def test_the_deadline_travels_in_the_command_and_old_records_have_none() -> None:
    cmd = _order("wire", deadline=1_234)
    assert decode_command(encode_command(cmd)) == cmd
    old = encode_command(cmd).replace(b',"deadline":1234', b"")
    assert b"deadline" not in old
    assert decode_command(old).deadline == 0  # type: ignore[union-attr]


def test_clock_headers_and_the_map() -> None:
    headers = batch_headers(10, 25, 1_700_000_000_000)
    assert parse_headers(headers) == (10, 25, 1_700_000_000_000)
    assert parse_headers([]) is None
    clocks = ClockMap()
    clocks.add(25, 40, 2)
    clocks.add(10, 25, 1)
    clocks.add(10, 25, 1)  # the batch's second record
    assert [clocks.at(o) for o in (10, 24, 25, 39)] == [1, 1, 2, 2]
    for offset in (9, 40):
        with pytest.raises(MissingClock):
            clocks.at(offset)


def _signed_setup() -> list[tuple[int, bytes]]:
    setup: list[Command] = [
        AddSymbol("add", 0, spec()),
        CreateAccount("acct", 0, 1),
        Deposit("dep", 0, 1, "USDT", 1_000_000 * E8),
    ]
    return [(i, encode_record(cmd, SIGNER)) for i, cmd in enumerate(setup)]


SIGNER = LocalAdminSigner()


def test_a_batch_is_judged_by_its_clock_and_replayed_by_the_recorded_one() -> None:
    records = _signed_setup()
    records += [
        (3, encode_command(_order("on-time", 5_000))),
        (4, encode_command(_order("late", 4_000))),
    ]
    live = run_batch(Engine(), records, verifier=SIGNER.verifier(), clock=lambda _o: 4_500)
    assert live.late == 1
    clocks = ClockMap()
    clocks.add(0, 5, 4_500)
    replay = run_batch(
        Engine(), records, verifier=SIGNER.verifier(), publish=False, clock=clocks.at
    )
    assert replay.last_seq == live.last_seq and replay.late == 1
    # A replay without the recorded clock cannot judge the deadline: it says so.
    with pytest.raises(MissingClock):
        run_batch(Engine(), records, verifier=SIGNER.verifier(), clock=ClockMap().at)


def test_the_api_sends_timestamp_plus_recv_window() -> None:
    params = Params({"timestamp": "1000", "recvWindow": "2500"})
    assert request_deadline(params) == 3_500
    assert request_deadline(Params({"timestamp": "1000"})) == 6_000  # Binance's default 5000
    assert request_deadline(Params({})) == 0
