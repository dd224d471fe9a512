"""Admin commands in the engine: each one's success, each refusal (and that a refusal changes
nothing but the remembered request id), the AdminAction audit event, replays, frozen accounts,
symbol commissions, delisting, and the funding lifecycle (docs/engine.md, "Admin commands")."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.domain.admin_auth import LocalAdminSigner
from bourse.domain.codec import decode_record, encode_command
from bourse.domain.commands import (
    AddSymbol,
    CreateAccount,
    DelistSymbol,
    Deposit,
    KeyChange,
    NewOrder,
    RejectedAdmin,
    SetAccountFees,
    SetAccountStatus,
    SetSymbolStatus,
    UpdateSymbol,
    WithdrawRequest,
    WithdrawSettle,
)
from bourse.domain.enums import OrderType, Side, SymbolStatus, TimeInForce
from bourse.domain.events import (
    AccountBalances,
    AccountUpdated,
    AdminAction,
    BalanceUpdate,
    ExecutionReport,
    FundingUpdate,
    Reply,
    SymbolUpdated,
)
from bourse.engine import Engine
from bourse.engine.invariants import problems
from tests.unit.test_engine_helpers import E8, LOT, SYMBOL, Bench, of, reply, spec

pytestmark = pytest.mark.unit

BAD = -1130
UNAUTHORIZED = (-1002, "You are not authorized to execute this request.")
DISABLED = (-2010, "This action is disabled on this account.")


def refused(b: Bench, events: list[Any]) -> tuple[int, str]:
    """A refused admin command: its AdminAction and Reply only, same code; state unchanged."""
    assert [type(e) for e in events] == [AdminAction, Reply], events
    action, answer = events
    assert (action.code, action.msg) == (answer.code, answer.msg) and answer.code != 0
    assert answer.detail == ""
    return answer.code, answer.msg


def refuses_without_change(b: Bench, kind: type, *args: Any) -> tuple[int, str]:
    before = b.engine.snapshot()
    b.admin_n += 1
    cmd = kind(f"adm{b.admin_n}", b.ts, *args)
    result = refused(b, b.run(cmd))
    after = orjson.loads(b.engine.snapshot())
    # Only the request id is remembered (a refused signed command must not be replayable).
    assert after["applied_admin"] == sorted(
        [*orjson.loads(before)["applied_admin"], cmd.request_id]
    )
    after["applied_admin"].remove(cmd.request_id)
    want = orjson.loads(before)
    want["seq"] = after["seq"]
    assert after == want
    return result


def detail(events: list[Any]) -> Any:
    return json.loads(reply(events).detail)


# ------------------------------------------------------------------------------- audit, replay


def test_every_admin_command_is_recorded_just_before_its_reply() -> None:
    b = Bench(accounts=1)
    events = b.admin(Deposit, 1, "BTC", E8, "tx-1", "arn:aws:iam::1:user/op")
    action = events[-2]
    assert isinstance(action, AdminAction)
    assert (action.command, action.principal, action.code, action.msg) == (
        "DEPOSIT", "arn:aws:iam::1:user/op", 0, "",
    )  # fmt: skip
    assert json.loads(action.detail) == {
        "request_id": action.request_id, "ts": b.ts, "account_id": 1, "asset": "BTC",
        "amount": E8, "tx_id": "tx-1", "principal": "arn:aws:iam::1:user/op",
    }  # fmt: skip
    plain = b.order(1, "BUY", 1, 100)
    assert not of(plain, AdminAction) and reply(plain).detail == ""


def test_a_replayed_admin_command_is_refused_even_when_it_failed_first() -> None:
    b = Bench(accounts=1, btc=1)
    first = b.run(WithdrawRequest("w-req", 1, 1, "BTC", 2 * E8, "w1"))
    assert reply(first).code == -2010  # insufficient: refused
    b.admin(Deposit, 1, "BTC", 5 * E8, "tx-more")
    again = b.run(WithdrawRequest("w-req", 1, 1, "BTC", 2 * E8, "w1"))  # now it would pass
    assert refused(b, again) == UNAUTHORIZED
    assert b.free(1, "BTC") == 6 * E8


def test_rejected_admin_is_refused_and_its_request_id_stays_usable() -> None:
    b = Bench(accounts=1)
    forged = RejectedAdmin("rid-1", 5, "DEPOSIT", "arn:evil", "unsigned")
    events = b.run(forged)
    assert refused(b, events) == UNAUTHORIZED
    assert (events[0].command, events[0].principal) == ("DEPOSIT", "arn:evil")
    assert reply(events).command == "REJECTED_ADMIN"
    # The forger could not burn the id: the real command with it still goes through.
    assert reply(b.run(Deposit("rid-1", 6, 1, "BTC", E8))).code == 0


# ------------------------------------------------------------------------------- accounts


def test_create_account_allocates_or_takes_the_given_id() -> None:
    e = Engine()
    first = e.process(CreateAccount("a", 1))
    assert isinstance(first[0], AccountUpdated) and first[0].status == "ACTIVE"
    assert json.loads(reply(first).detail) == {"accountId": 1}
    assert json.loads(reply(e.process(CreateAccount("b", 1, 10))).detail) == {"accountId": 10}
    assert json.loads(reply(e.process(CreateAccount("c", 1))).detail) == {"accountId": 11}
    assert e.accounts() == {1: "ACTIVE", 10: "ACTIVE", 11: "ACTIVE"}


def test_create_account_refusals() -> None:
    b = Bench(accounts=2)
    assert refuses_without_change(b, CreateAccount, 2) == (
        BAD, "Invalid data sent for a parameter. Account already exists.",
    )  # fmt: skip
    assert refuses_without_change(b, CreateAccount, -1)[0] == BAD
    assert refuses_without_change(b, CreateAccount, 2**53)[0] == BAD


def test_frozen_account_cannot_place_orders_but_can_cancel() -> None:
    b = Bench(accounts=2)
    b.order(1, "BUY", 10, 100)
    events = b.admin(SetAccountStatus, 1, True)
    assert of(events, AccountUpdated)[0].status == "FROZEN"
    assert detail(events) == {"accountId": 1, "status": "FROZEN"}
    assert b.engine.accounts()[1] == "FROZEN"
    rejected = b.order(1, "BUY", 10, 100)
    assert len(rejected) == 1 and (reply(rejected).code, reply(rejected).msg) == DISABLED
    assert reply(b.cancel(1, 1)).code == 0
    b.admin(SetAccountStatus, 1, False)
    assert reply(b.order(1, "BUY", 10, 100)).code == 0


def test_frozen_account_cancel_replace_new_part_is_refused() -> None:
    from bourse.domain.commands import CancelOrder, CancelReplace
    from bourse.domain.enums import CancelReplaceMode, Outcome

    b = Bench(accounts=1)
    b.order(1, "BUY", 10, 100)
    b.admin(SetAccountStatus, 1, True)
    new = NewOrder("cr", 9, 1, SYMBOL, Side.BUY, OrderType.LIMIT, "n1", 10 * LOT, None,
                   100 * E8, None, TimeInForce.GTC)  # fmt: skip
    events = b.run(CancelReplace("cr", 9, CancelReplaceMode.ALLOW_FAILURE,
                                 CancelOrder("cr", 9, 1, SYMBOL, 1), new))  # fmt: skip
    cancel, placed = reply(events).parts
    assert cancel.outcome is Outcome.SUCCESS
    assert (placed.outcome, placed.code, placed.msg) == (Outcome.FAILURE, *DISABLED)


def test_account_status_fees_and_keys_need_a_created_account() -> None:
    b = Bench(accounts=1)
    unknown = (BAD, "Invalid data sent for a parameter. Unknown account.")
    assert refuses_without_change(b, SetAccountStatus, 5, True) == unknown
    assert refuses_without_change(b, SetAccountFees, 5, 0, 0) == unknown
    assert refuses_without_change(b, KeyChange, 5, "key", "CREATED") == unknown
    assert refuses_without_change(b, KeyChange, 1, "key", "LOST")[0] == BAD
    assert refuses_without_change(b, KeyChange, 1, "", "CREATED")[0] == BAD
    events = b.admin(KeyChange, 1, "key", "ROTATED")
    assert [type(e) for e in events] == [AdminAction, Reply] and reply(events).code == 0


# ------------------------------------------------------------------------------- funding


def test_deposit_credits_once_per_tx_id() -> None:
    b = Bench(accounts=2, btc=0)
    events = b.admin(Deposit, 1, "BTC", E8, "tx-9")
    funding = of(events, FundingUpdate)[0]
    assert (funding.funding_id, funding.kind, funding.status, funding.tx_id) == (
        "tx-9", "DEPOSIT", "CREDITED", "tx-9",
    )  # fmt: skip
    assert of(events, BalanceUpdate)[0].delta == E8
    assert of(events, AccountBalances)[0].balances == (("BTC", E8, 0),)
    assert detail(events) == {"duplicate": False}
    again = b.admin(Deposit, 1, "BTC", E8, "tx-9")
    assert [type(e) for e in again] == [AdminAction, Reply] and detail(again) == {"duplicate": True}
    assert b.free(1, "BTC") == E8
    code, msg = refuses_without_change(b, Deposit, 2, "BTC", E8, "tx-9")
    assert code == BAD and "txId tx-9 already used" in msg
    assert refuses_without_change(b, Deposit, 1, "BTC", 2 * E8, "tx-9")[0] == BAD
    # no tx id: no idempotency; the funding id is the request id
    plain = b.admin(Deposit, 1, "BTC", E8)
    assert of(plain, FundingUpdate)[0].funding_id == reply(plain).request_id


def test_deposit_refusals() -> None:
    b = Bench(accounts=1)
    unknown = (BAD, "Invalid data sent for a parameter. Unknown account.")
    assert refuses_without_change(b, Deposit, 2, "BTC", E8) == unknown
    for args in ((0, "BTC", E8), (1, "btc", E8), (1, "BTC", 0), (1, "BTC", 2**63 - 1),
                 (1, "BTC", E8, "has space")):  # fmt: skip
        assert refuses_without_change(b, Deposit, *args) == (
            BAD, "Invalid data sent for a parameter."
        ), args  # fmt: skip


@pytest.mark.parametrize(("outcome", "free_after", "total_after"), [
    ("COMPLETED", 7, 7), ("FAILED", 10, 10), ("CANCELED", 10, 10),
])  # fmt: skip
def test_withdrawal_lifecycle(outcome: str, free_after: int, total_after: int) -> None:
    b = Bench(accounts=1, btc=10)
    events = b.admin(WithdrawRequest, 1, "BTC", 3 * E8, "w-1")
    assert of(events, FundingUpdate)[0].status == "REQUESTED"
    assert of(events, BalanceUpdate)[0].delta == -3 * E8
    assert (b.free(1, "BTC"), b.locked(1, "BTC")) == (7 * E8, 3 * E8)
    assert detail(events) == {"withdrawalId": "w-1", "status": "REQUESTED"}
    settled = b.admin(WithdrawSettle, "w-1", outcome)
    update = of(settled, FundingUpdate)[0]
    assert (update.funding_id, update.kind, update.status, update.account_id, update.amount) == (
        "w-1", "WITHDRAWAL", outcome, 1, 3 * E8,
    )  # fmt: skip
    assert of(settled, BalanceUpdate)[0].delta == (0 if outcome == "COMPLETED" else 3 * E8)
    assert (b.free(1, "BTC"), b.locked(1, "BTC")) == (free_after * E8, 0)
    assert b.engine._bal.totals["BTC"] == total_after * E8  # deposits - completed withdrawals
    assert b.engine.withdrawals()["w-1"] == (1, "BTC", 3 * E8, outcome)
    # settled once only
    code, msg = refuses_without_change(b, WithdrawSettle, "w-1", "FAILED")
    assert code == BAD and msg.endswith(f"Withdrawal w-1 is already {outcome}.")


def test_withdrawal_refusals() -> None:
    b = Bench(accounts=1, btc=1)
    assert refuses_without_change(b, WithdrawRequest, 1, "BTC", 2 * E8, "w1") == (
        -2010, "Account has insufficient balance for requested action.",
    )  # fmt: skip
    assert refuses_without_change(b, WithdrawRequest, 2, "BTC", E8, "w1")[0] == BAD
    assert refuses_without_change(b, WithdrawRequest, 1, "BTC", E8, "bad id!")[0] == BAD
    b.admin(WithdrawRequest, 1, "BTC", E8 // 2, "w1")
    assert refuses_without_change(b, WithdrawRequest, 1, "BTC", E8 // 4, "w1") == (
        BAD, "Invalid data sent for a parameter. withdrawalId already used.",
    )  # fmt: skip
    assert refuses_without_change(b, WithdrawSettle, "nope", "COMPLETED") == (
        BAD, "Invalid data sent for a parameter. Unknown withdrawal.",
    )  # fmt: skip
    assert refuses_without_change(b, WithdrawSettle, "w1", "LOST")[0] == BAD
    # the locked amount cannot be traded away
    assert reply(b.order(1, "SELL", 60, 100)).code == -2010


# ------------------------------------------------------------------------------- markets


def test_symbol_commissions_apply_unless_the_account_has_its_own() -> None:
    b = Bench(accounts=3, maker_commission=0, taker_commission=200_000)  # 0% / 0.2%
    b.admin(SetAccountFees, 3, 50_000, 50_000)
    b.order(1, "SELL", 100, 100)  # 1 BTC
    taker = of(b.order(2, "BUY", 50, 100), ExecutionReport)
    assert [(r.is_maker, r.commission) for r in taker if r.trade_id > 0] == [
        (True, 0), (False, E8 // 2 * 200_000 // E8),
    ]  # fmt: skip
    own = of(b.order(3, "BUY", 50, 100), ExecutionReport)
    assert [r.commission for r in own if r.trade_id > 0 and not r.is_maker] == [
        E8 // 2 * 50_000 // E8
    ]


def test_update_symbol_changes_filters_and_commissions_but_keeps_status() -> None:
    b = Bench(accounts=2)
    b.admin(SetSymbolStatus, SYMBOL, SymbolStatus.HALT)
    new = spec(maker_commission=1, taker_commission=2, min_qty=2 * LOT, status=SymbolStatus.TRADING)
    events = b.admin(UpdateSymbol, new)
    updated = of(events, SymbolUpdated)[0].spec
    assert updated == replace(new, status=SymbolStatus.HALT) == b.engine.symbols()[SYMBOL]
    assert refuses_without_change(b, UpdateSymbol, spec(quote_asset="EUR"))[0] == BAD
    assert refuses_without_change(b, UpdateSymbol, spec(symbol="NOPE"))[0] == -1121
    assert refuses_without_change(b, UpdateSymbol, spec(maker_commission=E8 + 1))[0] == BAD
    b.admin(SetSymbolStatus, SYMBOL, SymbolStatus.TRADING)
    b.order(1, "BUY", 10, 100)
    code, msg = refuses_without_change(b, UpdateSymbol, spec(tick_size=2 * E8, min_price=2 * E8))
    assert code == BAD and "cannot change while orders are open" in msg


def test_delist_cancels_everything_and_is_for_good() -> None:
    b = Bench(accounts=2)
    b.order(1, "BUY", 10, 100)
    b.order(2, "SELL", 10, 110)
    b.order(2, "SELL", 5, 90, type=OrderType.STOP_LOSS_LIMIT, stop_price=95 * E8)
    events = b.admin(DelistSymbol, SYMBOL)
    assert of(events, SymbolUpdated)[0].spec.status is SymbolStatus.BREAK
    canceled = of(events, ExecutionReport)
    assert [(r.order.order_id, r.status) for r in canceled] == [
        (1, "CANCELED"), (2, "CANCELED"), (3, "CANCELED"),
    ]  # fmt: skip
    assert b.engine.open_orders(1) == b.engine.open_orders(2) == []
    assert b.locked(1, "USDT") == b.locked(2, "BTC") == 0
    assert b.engine.delisted() == (SYMBOL,)
    delisted = (BAD, "Invalid data sent for a parameter. Symbol is delisted.")
    assert refuses_without_change(b, SetSymbolStatus, SYMBOL, SymbolStatus.TRADING) == delisted
    assert refuses_without_change(b, DelistSymbol, SYMBOL) == delisted
    assert refuses_without_change(b, UpdateSymbol, spec()) == delisted
    assert refuses_without_change(b, AddSymbol, spec())[0] == BAD  # the name stays taken
    assert reply(b.order(1, "BUY", 10, 100)).msg == "Market is closed."


# ------------------------------------------------------------------------------- snapshots


def test_snapshot_round_trips_the_admin_state() -> None:
    b = Bench(accounts=3, maker_commission=7, taker_commission=9)
    b.admin(SetAccountStatus, 2, True)
    b.admin(Deposit, 1, "ETH", E8, "tx-a")
    b.admin(WithdrawRequest, 1, "ETH", E8 // 2, "w-a")
    b.admin(WithdrawRequest, 3, "BTC", E8, "w-b")
    b.admin(WithdrawSettle, "w-b", "COMPLETED")
    b.admin(AddSymbol, spec(symbol="ETHUSDT", base_asset="ETH"))
    b.admin(DelistSymbol, "ETHUSDT")
    restored = Engine.restore(b.engine.snapshot())
    assert restored.state_hash() == b.engine.state_hash()
    assert not problems(restored)
    for read in ("accounts", "withdrawals", "deposits", "delisted", "symbols", "balances"):
        assert getattr(restored, read)() == getattr(b.engine, read)(), read
    # The restored engine behaves the same: replay refused, frozen refused, next id, tx id.
    for cmd in (
        Deposit("adm2", 99, 1, "ETH", E8, "x"),
        CreateAccount("new", 99),
        Deposit("dup", 99, 1, "ETH", E8, "tx-a"),
        WithdrawSettle("s", 99, "w-a", "FAILED"),
        NewOrder("o", 99, 2, SYMBOL, Side.BUY, OrderType.LIMIT, "c", LOT, None, E8, None,
                 TimeInForce.GTC),
    ):  # fmt: skip
        assert restored.process(cmd) == b.engine.process(cmd)
    assert restored.state_hash() == b.engine.state_hash()


def test_state_hash_covers_the_admin_state() -> None:
    a, c = Engine(), Engine()
    for e in (a, c):
        e.process(CreateAccount("x", 0, 1))
    c.process(SetAccountStatus("y", 0, 1, False))  # same status, but one more applied id
    c._seq = a._seq
    assert a.state_hash() != c.state_hash()


# ------------------------------------------------------------------------------- properties

_steps = st.lists(
    st.tuples(
        st.sampled_from(["deposit", "request", "settle"]),
        st.integers(1, 3),  # account
        st.sampled_from(["BTC", "ETH"]),
        st.integers(1, 5 * E8),
        st.sampled_from(["COMPLETED", "FAILED", "CANCELED"]),
        st.integers(0, 6),  # which withdrawal / tx id
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(_steps)
def test_random_funding_lifecycles_keep_totals_equal_to_balances(steps: list[Any]) -> None:
    engine = Engine()
    for acct in (1, 2, 3):
        engine.process(CreateAccount(f"a{acct}", 0, acct))
    external = {"BTC": 0, "ETH": 0}  # credited minus completed, from the events alone
    for n, (kind, acct, asset, amount, outcome, k) in enumerate(steps):
        cmd: Any
        if kind == "deposit":
            cmd = Deposit(f"r{n}", n, acct, asset, amount, f"tx{k}")
        elif kind == "request":
            cmd = WithdrawRequest(f"r{n}", n, acct, asset, amount, f"w{n}")
        else:
            cmd = WithdrawSettle(f"r{n}", n, f"w{k * 3}", outcome)
        for event in engine.process(cmd):
            if isinstance(event, FundingUpdate) and event.status in ("CREDITED", "COMPLETED"):
                external[event.asset] += (
                    event.amount if event.status == "CREDITED" else -event.amount
                )
        assert not problems(engine), (cmd, problems(engine))
        held = {"BTC": 0, "ETH": 0}
        for assets in engine.balances().values():
            for name, (free, locked) in assets.items():
                assert free >= 0 and locked >= 0
                held[name] += free + locked
        assert held == external == {a: engine._bal.totals.get(a, 0) for a in held}
        pending = sum(w[2] for w in engine.withdrawals().values() if w[3] == "REQUESTED")
        assert pending == sum(
            locked for assets in engine.balances().values() for _, locked in assets.values()
        )


SIGNER = LocalAdminSigner("kid-trusted")
VERIFIER = SIGNER.verifier()
OTHER = LocalAdminSigner("kid-trusted")  # same kid, another key: a forgery


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["plain", "other-key", "unknown-kid", "tampered"]),
    st.integers(1, 2),
    st.integers(1, 10**12),
    st.sampled_from(["deposit", "withdraw", "fees", "create"]),
)
def test_forged_admin_records_never_change_balances(how: str, acct: int, amount: int,
                                                    what: str) -> None:  # fmt: skip
    engine = Engine()
    for cmd in (CreateAccount("a1", 0, 1), CreateAccount("a2", 0, 2),
                Deposit("d1", 0, 1, "BTC", 10**12, "t1")):  # fmt: skip
        engine.process(decode_record(SIGNER.signed_record(cmd), VERIFIER))
    before = engine.balances(), engine.accounts(), engine.account_fees()
    cmd_: Any = {
        "deposit": Deposit("f", 1, acct, "BTC", amount, "t2"),
        "withdraw": WithdrawRequest("f", 1, acct, "BTC", amount, "w"),
        "fees": SetAccountFees("f", 1, acct, 0, 0),
        "create": CreateAccount("f", 1, 0),
    }[what]
    if how == "plain":
        record = encode_command(cmd_)
    elif how == "other-key":
        record = OTHER.signed_record(cmd_)
    elif how == "unknown-kid":
        record = LocalAdminSigner("kid-unknown").signed_record(cmd_)
    else:
        good = json.loads(SIGNER.signed_record(cmd_))
        import base64

        body = base64.b64decode(good["body"]).replace(b'"f"', b'"g"')
        good["body"] = base64.b64encode(body).decode()
        record = json.dumps(good).encode()
    decoded = decode_record(record, VERIFIER)
    assert isinstance(decoded, RejectedAdmin)
    events = engine.process(decoded)
    assert (reply(events).code, reply(events).msg) == UNAUTHORIZED
    assert (engine.balances(), engine.accounts(), engine.account_fees()) == before
