"""The admin plane in the record, pure: AdminAction / AccountUpdated / FundingUpdate -> rows,
the funding ledger, the SNS messages, the user data streams of a funding step, and the
reconciliation of funding."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest

from bourse.adapters.notify import (
    _funding_entry,
    _subject,
    funding_message,
    refused_admin_alert,
)
from bourse.domain.events import (
    AccountBalances,
    AccountUpdated,
    AdminAction,
    BalanceUpdate,
    Event,
    FundingUpdate,
    Reply,
)
from bourse.record.reconcile import (
    FundingItem,
    funding_differences,
    funding_totals,
)
from bourse.record.rows import (
    ACCOUNT_COLUMNS,
    ADMIN_LOG_COLUMNS,
    EXTERNAL_ACCOUNT,
    FUNDING_COLUMNS,
    detail_json,
    funding_of,
    map_events,
    refused_admin_of,
)
from bourse.streams.market import StreamState

pytestmark = pytest.mark.unit

BTC = 100_000_000  # 1 BTC in units


class _Seq:
    """Builds a command's events the way the engine orders them, with consecutive seqs."""

    def __init__(self) -> None:
        self.seq = 0
        self.events: list[Event] = []
        self.free = 0
        self.locked = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def admin(
        self, command: str, code: int = 0, detail: str = "{}", principal: str = "arn:x"
    ) -> None:
        ts = 1_000 * self.seq
        self.events.append(
            AdminAction(self._next(), ts, f"r{self.seq}", command, principal, code,
                        "" if code == 0 else "You are not authorized to execute this request.",
                        detail)
        )  # fmt: skip
        self.events.append(Reply(self._next(), ts, f"r{self.seq}", command, code, "", ()))

    def create(self, account: int) -> None:
        self.events.append(AccountUpdated(self._next(), 1_000 * self.seq, account, "ACTIVE"))
        self.admin("CREATE_ACCOUNT", detail=json.dumps({"accountId": account}))

    def funding(
        self, fid: str, kind: str, status: str, amount: int, free_delta: int, locked_delta: int
    ) -> None:
        ts = 1_000 * self.seq
        self.free += free_delta
        self.locked += locked_delta
        self.events.append(BalanceUpdate(self._next(), ts, 7, "BTC", free_delta))
        self.events.append(
            FundingUpdate(self._next(), ts, fid, kind, status, 7, "BTC", amount,
                          fid if kind == "DEPOSIT" else "")
        )  # fmt: skip
        self.events.append(AccountBalances(self._next(), ts, 7, (("BTC", self.free, self.locked),)))
        self.admin("DEPOSIT" if kind == "DEPOSIT" else "WITHDRAW")


def _lifecycle() -> _Seq:
    s = _Seq()
    s.create(7)
    s.funding("tx1", "DEPOSIT", "CREDITED", 5 * BTC, 5 * BTC, 0)
    s.funding("w1", "WITHDRAWAL", "REQUESTED", 2 * BTC, -2 * BTC, 2 * BTC)
    s.funding("w1", "WITHDRAWAL", "COMPLETED", 2 * BTC, 0, -2 * BTC)
    s.funding("w2", "WITHDRAWAL", "REQUESTED", BTC, -BTC, BTC)
    s.funding("w2", "WITHDRAWAL", "CANCELED", BTC, BTC, -BTC)
    s.funding("w3", "WITHDRAWAL", "REQUESTED", BTC, -BTC, BTC)  # still pending
    s.events.append(AccountUpdated(s._next(), 99_000, 7, "FROZEN"))
    s.admin("SET_ACCOUNT_STATUS")
    s.admin("DEPOSIT", code=-1002, detail="not json {", principal="forger")
    return s


def test_funding_rows_keep_the_request_and_the_newest_step() -> None:
    s = _lifecycle()
    rows = map_events(s.events, {})
    assert len(FUNDING_COLUMNS) == len(next(iter(rows.funding.values())))
    by_id = {k: dict(zip(FUNDING_COLUMNS, v, strict=True)) for k, v in rows.funding.items()}
    assert set(by_id) == {("tx1", "DEPOSIT"), ("w1", "WITHDRAWAL"), ("w2", "WITHDRAWAL"),
                          ("w3", "WITHDRAWAL")}  # fmt: skip
    w1 = by_id[("w1", "WITHDRAWAL")]
    assert w1["status"] == "COMPLETED" and w1["amount"] == 2 * BTC
    assert int(str(w1["requested_seq"])) < int(str(w1["updated_seq"]))
    assert int(str(w1["requested_ts"])) < int(str(w1["updated_ts"]))
    assert by_id[("w2", "WITHDRAWAL")]["status"] == "CANCELED"
    assert by_id[("w3", "WITHDRAWAL")]["status"] == "REQUESTED"
    assert by_id[("tx1", "DEPOSIT")]["tx_id"] == "tx1"
    assert rows.accounts == {7: (7, "FROZEN", rows.accounts[7][2], 99_000)}
    assert len(ACCOUNT_COLUMNS) == len(rows.accounts[7])


def test_the_ledger_moves_money_only_when_it_crosses_the_edge() -> None:
    s = _lifecycle()
    rows = map_events(s.events, {})
    kinds = [(r[2], r[3], r[5]) for r in rows.ledger]
    # Deposit credited: EXTERNAL -5, account +5; w1 completed: account -2, EXTERNAL +2.
    # Requests, cancels (and w3, still pending) move free <-> locked only: no ledger.
    assert kinds == [
        ("DEPOSIT", EXTERNAL_ACCOUNT, -5 * BTC), ("DEPOSIT", 7, 5 * BTC),
        ("WITHDRAWAL", EXTERNAL_ACCOUNT, 2 * BTC), ("WITHDRAWAL", 7, -2 * BTC),
    ]  # fmt: skip
    per_txn: dict[int, int] = defaultdict(int)
    for r in rows.ledger:
        per_txn[int(str(r[0]))] += int(str(r[5]))
    assert set(per_txn.values()) == {0}
    # The account's ledger sum is its free + locked at every step's end (here: the last).
    held = sum(int(str(r[5])) for r in rows.ledger if r[3] == 7)
    assert held == s.free + s.locked == 3 * BTC
    assert rows.balances[(7, "BTC")][2:4] == (s.free, s.locked) == (2 * BTC, BTC)


def test_a_batch_cut_between_the_steps_gives_the_same_end_state() -> None:
    s = _lifecycle()
    whole = map_events(s.events, {})
    cut = next(i for i, e in enumerate(s.events) if isinstance(e, FundingUpdate)
               and e.status == "COMPLETED")  # fmt: skip
    first = map_events(s.events[:cut], {})
    second = map_events(s.events[cut:], {}, start_after=s.events[cut - 1].seq)
    # The second part alone cannot know w1's request: the writer's merge keeps the stored
    # requested_*; the rest of the row is the same.
    w1_whole = whole.funding[("w1", "WITHDRAWAL")]
    w1_second = second.funding[("w1", "WITHDRAWAL")]
    assert w1_whole[:7] == w1_second[:7] and w1_whole[8] == w1_second[8]
    assert first.funding[("w1", "WITHDRAWAL")][5] == "REQUESTED"
    assert sorted(first.ledger + second.ledger) == sorted(whole.ledger)
    assert first.admin_log + second.admin_log == whole.admin_log


def test_every_admin_action_is_logged_with_its_detail_as_json() -> None:
    s = _lifecycle()
    rows = map_events(s.events, {})
    actions = [e for e in s.events if isinstance(e, AdminAction)]
    assert [r[0] for r in rows.admin_log] == [a.seq for a in actions]
    assert all(len(r) == len(ADMIN_LOG_COLUMNS) for r in rows.admin_log)
    forged = rows.admin_log[-1]
    assert forged[3:7] == ("DEPOSIT", "forger", -1002,
                           "You are not authorized to execute this request.")  # fmt: skip
    assert json.loads(str(forged[7])) == "not json {"  # kept, as a JSON string
    assert json.loads(str(rows.admin_log[0][7])) == {"accountId": 7}
    assert detail_json("") is None and detail_json('{"a":1}') == '{"a":1}'
    # What PostgreSQL would refuse (NUL, its escape, lone surrogates) is scrubbed, not fatal.
    assert detail_json('{"a":"x\\u0000y","b":["\\ud800"]}') == '{"a":"x\ufffdy","b":["?"]}'
    assert detail_json("no\x00json") == '"no\ufffdjson"'
    assert detail_json('"\\ud83d\\ude00"') == '"\U0001f600"'  # a valid pair is kept


def test_forged_claims_are_scrubbed_for_postgresql() -> None:
    forged = AdminAction(1, 1, "r\x00\ud800", "DEPOSIT\x00", "arn\udfff", -1002, "m", "{}")
    (row,) = map_events([forged], {}).admin_log
    assert row[2:5] == ("r\ufffd?", "DEPOSIT\ufffd", "arn?")
    for text in row[2:5]:
        str(text).encode("utf-8")  # no lone surrogate left


def test_funding_messages_and_refused_admin_alerts() -> None:
    s = _lifecycle()
    updates = funding_of(s.events)
    assert [(u.funding_id, u.status) for u in updates] == [
        ("tx1", "CREDITED"), ("w1", "REQUESTED"), ("w1", "COMPLETED"), ("w2", "REQUESTED"),
        ("w2", "CANCELED"), ("w3", "REQUESTED"),
    ]  # fmt: skip
    message = funding_message(updates[2])
    assert message == {
        "seq": updates[2].seq, "ts": updates[2].ts, "fundingId": "w1", "kind": "WITHDRAWAL",
        "status": "COMPLETED", "accountId": 7, "asset": "BTC", "amount": 2 * BTC, "txId": "",
    }  # fmt: skip
    entry = _funding_entry(updates[2])
    assert entry["Id"] == str(updates[2].seq) and json.loads(entry["Message"]) == message
    attrs = {k: v["StringValue"] for k, v in entry["MessageAttributes"].items()}
    assert attrs == {"seq": str(updates[2].seq), "fundingId": "w1", "kind": "WITHDRAWAL",
                     "status": "COMPLETED", "accountId": "7", "asset": "BTC"}  # fmt: skip
    (refused,) = refused_admin_of(s.events)
    subject, alert = refused_admin_alert(refused)
    assert alert["kind"] == "ADMIN_COMMAND_REFUSED" and alert["principal"] == "forger"
    assert alert["seq"] == refused.seq and alert["code"] == -1002
    assert subject.startswith("refused admin command DEPOSIT")
    assert _subject("bad\nname\u00e9" + "x" * 200) == "bad?name?" + "x" * 91
    assert _subject("\n") == "?" and _subject("") == "alert"


def test_funding_steps_reach_the_user_stream_and_admin_events_do_not() -> None:
    s = _lifecycle()
    out = StreamState().apply(s.events)
    assert not out.market
    assert set(out.user) == {7}
    messages = [json.loads(m) for m in out.user[7]]
    kinds = [m["e"] for m in messages]
    # Six funding steps, each one balanceUpdate then one outboundAccountPosition; nothing
    # from AdminAction, AccountUpdated, FundingUpdate or Reply.
    assert kinds == ["balanceUpdate", "outboundAccountPosition"] * 6
    deltas = [m["d"] for m in messages if m["e"] == "balanceUpdate"]
    assert deltas == ["5.00000000", "-2.00000000", "0.00000000", "-1.00000000", "1.00000000",
                      "-1.00000000"]  # fmt: skip
    last = messages[-1]["B"]
    assert last == [{"a": "BTC", "f": "2.00000000", "l": "1.00000000"}]


def test_funding_differences_and_totals() -> None:
    engine = {
        ("tx1", "DEPOSIT"): FundingItem(7, "BTC", 5, "CREDITED"),
        ("w1", "WITHDRAWAL"): FundingItem(7, "BTC", 2, "REQUESTED"),
    }
    assert funding_differences(engine, dict(engine)) == []
    tampered = {**engine, ("w1", "WITHDRAWAL"): FundingItem(7, "BTC", 3, "REQUESTED")}
    lines = [str(d) for d in funding_differences(engine, tampered)]
    # The row itself, the per-asset total of its status and the account's pending amount.
    assert len(lines) == 3
    assert lines[0].startswith("funding WITHDRAWAL w1:")
    assert any(line.startswith("funding total BTC WITHDRAWAL REQUESTED") for line in lines)
    assert any(line.startswith("pending withdrawals account 7 BTC") for line in lines)
    missing = funding_differences(engine, {("tx1", "DEPOSIT"): engine[("tx1", "DEPOSIT")]})
    assert "record none" in str(missing[0])
    assert funding_totals(engine) == {("BTC", "DEPOSIT", "CREDITED"): 5,
                                      ("BTC", "WITHDRAWAL", "REQUESTED"): 2}  # fmt: skip


def _engine_run() -> tuple[list[Event], Any]:
    from bourse.domain.commands import (
        CreateAccount,
        Deposit,
        RejectedAdmin,
        SetAccountStatus,
        WithdrawRequest,
        WithdrawSettle,
    )
    from bourse.engine import Engine

    engine = Engine()
    commands: list[Any] = [
        CreateAccount("c1", 1), CreateAccount("c2", 2),
        Deposit("d1", 3, 1, "BTC", 5 * BTC, "tx-1"), Deposit("d2", 4, 2, "USDT", 900 * BTC),
        Deposit("d1b", 5, 1, "BTC", 5 * BTC, "tx-1"),  # the same txId again: credits nothing
        WithdrawRequest("w1", 6, 1, "BTC", 2 * BTC, "wd-1"),
        WithdrawSettle("s1", 7, "wd-1", "COMPLETED"),
        WithdrawRequest("w2", 8, 2, "USDT", 100 * BTC, "wd-2"),
        WithdrawSettle("s2", 9, "wd-2", "FAILED"),
        WithdrawRequest("w3", 10, 1, "BTC", BTC, "wd-3"),
        WithdrawSettle("s3", 11, "wd-3", "CANCELED"),
        WithdrawRequest("w4", 12, 1, "BTC", BTC, "wd-4"),  # stays pending
        SetAccountStatus("f1", 13, 2, True),
        RejectedAdmin("forged", 14, "DEPOSIT", "arn:intruder", "bad signature"),
        CreateAccount("c1", 15),  # a replay of a signed command: refused too
    ]  # fmt: skip
    events = [ev for cmd in commands for ev in engine.process(cmd)]
    return events, engine


def test_the_engines_funding_lifecycle_in_the_record_and_the_streams() -> None:
    events, engine = _engine_run()
    rows = map_events(events, {})
    # The ledger keeps each account's holding equal to the engine's free + locked.
    held: dict[tuple[int, str], int] = defaultdict(int)
    for r in rows.ledger:
        held[(int(str(r[3])), str(r[4]))] += int(str(r[5]))
    for account, assets in engine.balances().items():
        for asset, (free, locked) in assets.items():
            assert held[(account, asset)] == free + locked
    assert {k: v[5] for k, v in rows.funding.items()} == {
        ("tx-1", "DEPOSIT"): "CREDITED", ("d2", "DEPOSIT"): "CREDITED",
        ("wd-1", "WITHDRAWAL"): "COMPLETED", ("wd-2", "WITHDRAWAL"): "FAILED",
        ("wd-3", "WITHDRAWAL"): "CANCELED", ("wd-4", "WITHDRAWAL"): "REQUESTED",
    }  # fmt: skip
    assert {a: r[1] for a, r in rows.accounts.items()} == engine.accounts() == {
        1: "ACTIVE", 2: "FROZEN",
    }  # fmt: skip
    assert [(e.request_id, e.principal) for e in refused_admin_of(events)] == [
        ("forged", "arn:intruder"), ("c1", ""),
    ]  # fmt: skip
    assert len(rows.admin_log) == 15
    # Each funding step reaches its account's user data stream as balanceUpdate then
    # outboundAccountPosition: 2 deposits, 4 requests, 3 settlements.
    out = StreamState().apply(events)
    kinds = [json.loads(m)["e"] for msgs in out.user.values() for m in msgs]
    assert kinds.count("balanceUpdate") == kinds.count("outboundAccountPosition") == 9
    for msgs in out.user.values():
        pairs = [json.loads(m)["e"] for m in msgs]
        assert pairs == ["balanceUpdate", "outboundAccountPosition"] * (len(pairs) // 2)
    assert not out.market


def test_reconcile_compares_the_engines_funding_with_the_records() -> None:
    from matching_service import reconcile

    events, engine = _engine_run()
    rows = map_events(events, {})
    state = reconcile.RecordState(rows.last_seq)
    for (account, asset), row in rows.balances.items():
        state.balances.setdefault(account, {})[asset] = (int(str(row[2])), int(str(row[3])))
    for (fid, kind), row in rows.funding.items():
        item = FundingItem(int(str(row[2])), str(row[3]), int(str(row[4])), str(row[5]))
        if kind == "WITHDRAWAL" or row[6]:
            state.funding[(fid, kind)] = item
        if (kind, item.status) in (("DEPOSIT", "CREDITED"), ("WITHDRAWAL", "COMPLETED")):
            sign = 1 if kind == "DEPOSIT" else -1
            state.net[item.asset] = state.net.get(item.asset, 0) + sign * item.amount
    state.accounts = {a: str(r[1]) for a, r in rows.accounts.items()}
    assert reconcile.compare(engine, state) == []
    state.funding[("wd-4", "WITHDRAWAL")] = FundingItem(1, "BTC", BTC, "COMPLETED")
    state.net["USDT"] -= 1
    state.accounts[2] = "ACTIVE"
    lines = reconcile.compare(engine, state)
    assert lines == [
        f"funding WITHDRAWAL wd-4: engine account=1 BTC {BTC} REQUESTED,"
        f" record account=1 BTC {BTC} COMPLETED",
        f"funding total BTC WITHDRAWAL COMPLETED: engine {2 * BTC}, record {3 * BTC}",
        f"funding total BTC WITHDRAWAL REQUESTED: engine {BTC}, record 0",
        f"pending withdrawals account 1 BTC: engine {BTC}, record 0",
        f"funding net USDT: engine {900 * BTC}, record {900 * BTC - 1}",
        "account 2: engine FROZEN, record ACTIVE",
    ]
