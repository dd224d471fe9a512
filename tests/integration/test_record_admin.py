"""The recorder on the admin plane's events, on real PostgreSQL and moto SNS/SQS: the audit log,
the funding lifecycle, account statuses, the funding topic and the alerts of refused admin
commands; a re-delivered batch changes nothing; funding_history; reconcile of funding.

Own database, topics and queues: nothing here touches the stack's record or topics.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from aws_lambda_powertools import Logger, Metrics

from bourse.adapters import aws
from bourse.adapters.notify import SnsPublisher
from bourse.adapters.record_reads import funding_history
from bourse.adapters.record_store import RecordStore
from bourse.consumers.recorder import Recorder
from bourse.domain.event_codec import encode_events
from bourse.domain.events import (
    AccountBalances,
    AccountUpdated,
    AdminAction,
    BalanceUpdate,
    Event,
    FundingUpdate,
    Reply,
)
from bourse.record.reconcile import FundingItem, funding_differences
from bourse.settings import Settings
from matching_service.reconcile import record_state
from tests.integration.record_support import dump, scratch_database, truncate_record

pytestmark = pytest.mark.integration

BTC = 100_000_000
REFUSED = "You are not authorized to execute this request."


def lifecycle() -> list[Event]:
    """Two accounts' admin history as the engine emits it: creation, a deposit, withdrawals
    completed, canceled and pending, a freeze, and one forged command."""
    out: list[Event] = []
    seq = 0
    held: dict[tuple[int, str], list[int]] = {}

    def nxt() -> int:
        nonlocal seq
        seq += 1
        return seq

    def admin(command: str, code: int = 0, detail: str = "{}", who: str = "arn:op") -> None:
        ts = 1_700_000_000_000 + seq
        msg = REFUSED if code else ""
        out.append(AdminAction(nxt(), ts, f"req{seq}", command, who, code, msg, detail))
        out.append(Reply(nxt(), ts, f"req{seq}", command, code, msg, ()))

    def step(account: int, asset: str, fid: str, kind: str, status: str, amount: int) -> None:
        free_d, locked_d = {
            "CREDITED": (amount, 0), "REQUESTED": (-amount, amount), "COMPLETED": (0, -amount),
            "FAILED": (amount, -amount), "CANCELED": (amount, -amount),
        }[status]  # fmt: skip
        bal = held.setdefault((account, asset), [0, 0])
        bal[0] += free_d
        bal[1] += locked_d
        ts = 1_700_000_000_000 + seq
        out.append(BalanceUpdate(nxt(), ts, account, asset, free_d))
        tx = fid if kind == "DEPOSIT" else ""
        out.append(FundingUpdate(nxt(), ts, fid, kind, status, account, asset, amount, tx))
        out.append(AccountBalances(nxt(), ts, account, ((asset, bal[0], bal[1]),)))
        admin("DEPOSIT" if kind == "DEPOSIT" else "WITHDRAW", detail=json.dumps({"id": fid}))

    for account in (1, 2):
        out.append(AccountUpdated(nxt(), 1_700_000_000_000 + seq, account, "ACTIVE"))
        admin("CREATE_ACCOUNT", detail=json.dumps({"accountId": account}))
    step(1, "BTC", "tx-a", "DEPOSIT", "CREDITED", 5 * BTC)
    step(2, "USDT", "tx-b", "DEPOSIT", "CREDITED", 1000 * BTC)
    step(1, "BTC", "w-1", "WITHDRAWAL", "REQUESTED", 2 * BTC)
    step(1, "BTC", "w-1", "WITHDRAWAL", "COMPLETED", 2 * BTC)
    step(2, "USDT", "w-2", "WITHDRAWAL", "REQUESTED", 10 * BTC)
    step(2, "USDT", "w-2", "WITHDRAWAL", "FAILED", 10 * BTC)
    step(1, "BTC", "w-3", "WITHDRAWAL", "REQUESTED", BTC)
    out.append(AccountUpdated(nxt(), 1_700_000_000_000 + seq, 2, "FROZEN"))
    admin("SET_ACCOUNT_STATUS")
    admin("DEPOSIT", code=-1002, detail='{"accountId":1,"amount":"1e9"}', who="arn:intruder")
    return out


def engine_funding() -> dict[tuple[str, str], FundingItem]:
    """What the engine holds after lifecycle() (what reconcile reads from it)."""
    return {
        ("tx-a", "DEPOSIT"): FundingItem(1, "BTC", 5 * BTC, "CREDITED"),
        ("tx-b", "DEPOSIT"): FundingItem(2, "USDT", 1000 * BTC, "CREDITED"),
        ("w-1", "WITHDRAWAL"): FundingItem(1, "BTC", 2 * BTC, "COMPLETED"),
        ("w-2", "WITHDRAWAL"): FundingItem(2, "USDT", 10 * BTC, "FAILED"),
        ("w-3", "WITHDRAWAL"): FundingItem(1, "BTC", BTC, "REQUESTED"),
    }


def _msk(events: list[Event]) -> dict[str, Any]:
    value = base64.b64encode(encode_events(events)).decode()
    record = {"topic": "bourse.events", "partition": 0, "offset": 0, "value": value}
    return {"eventSource": "aws:kafka", "records": {"bourse.events-0": [record]}}


@dataclass
class Env:
    dsn: str
    funding_topic: str
    alerts_topic: str
    funding_queue: str
    alerts_queue: str


def _queue(name: str, topic_arn: str) -> str:
    sqs, sns = aws.client("sqs"), aws.client("sns")
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    # Not raw: the SNS envelope shows the message attributes as a subscriber sees them.
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def _drain(url: str) -> list[dict[str, Any]]:
    sqs = aws.client("sqs")
    out: list[dict[str, Any]] = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
        "Messages", []
    ):
        out.extend(json.loads(m["Body"]) for m in got)
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


@pytest.fixture(scope="module")
def env(local_stack: Settings) -> Iterator[Env]:
    suffix = uuid.uuid4().hex[:8]
    sns, sqs = aws.client("sns"), aws.client("sqs")
    funding_topic = sns.create_topic(Name=f"test-ra-funding-{suffix}")["TopicArn"]
    alerts_topic = sns.create_topic(Name=f"test-ra-alerts-{suffix}")["TopicArn"]
    funding_queue = _queue(f"test-ra-funding-{suffix}", funding_topic)
    alerts_queue = _queue(f"test-ra-alerts-{suffix}", alerts_topic)
    try:
        with scratch_database(local_stack.pg_dsn, "test_record_admin") as dsn:
            yield Env(dsn, funding_topic, alerts_topic, funding_queue, alerts_queue)
    finally:
        for url in (funding_queue, alerts_queue):
            sqs.delete_queue(QueueUrl=url)
        for arn in (funding_topic, alerts_topic):
            sns.delete_topic(TopicArn=arn)


@pytest.fixture()
def recorder(env: Env) -> Iterator[Recorder]:
    truncate_record(env.dsn)
    _drain(env.funding_queue)
    _drain(env.alerts_queue)
    sns = aws.client("sns")
    store = RecordStore(env.dsn, "test")
    rec = Recorder(
        store, None, None, Logger(service="test"), Metrics(namespace="Test", service="test"),
        funding=SnsPublisher(sns, env.funding_topic), alerts=SnsPublisher(sns, env.alerts_topic),
    )  # fmt: skip
    yield rec
    store.close()


def _rows(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(query.encode()).fetchall()


def test_admin_events_land_in_their_tables(recorder: Recorder, env: Env) -> None:
    events = lifecycle()
    assert recorder.handle(_msk(events)) == {"batchItemFailures": []}
    actions = [e for e in events if isinstance(e, AdminAction)]
    log = _rows(env.dsn, "SELECT seq, command, principal, code, msg, detail FROM admin_log"
                         " ORDER BY seq")  # fmt: skip
    assert [r[0] for r in log] == [a.seq for a in actions]
    assert log[-1][1:5] == ("DEPOSIT", "arn:intruder", -1002, REFUSED)
    assert log[-1][5] == {"accountId": 1, "amount": "1e9"}  # jsonb, queryable
    assert log[0][5] == {"accountId": 1}
    funding = _rows(
        env.dsn,
        "SELECT funding_id, kind, account_id, asset, amount, status, tx_id,"
        " requested_seq < updated_seq, requested_ts <= updated_ts FROM funding ORDER BY 1",
    )
    assert funding == [
        ("tx-a", "DEPOSIT", 1, "BTC", 5 * BTC, "CREDITED", "tx-a", False, True),
        ("tx-b", "DEPOSIT", 2, "USDT", 1000 * BTC, "CREDITED", "tx-b", False, True),
        ("w-1", "WITHDRAWAL", 1, "BTC", 2 * BTC, "COMPLETED", "", True, True),
        ("w-2", "WITHDRAWAL", 2, "USDT", 10 * BTC, "FAILED", "", True, True),
        ("w-3", "WITHDRAWAL", 1, "BTC", BTC, "REQUESTED", "", False, True),
    ]
    assert _rows(env.dsn, "SELECT account_id, status FROM accounts ORDER BY 1") == [
        (1, "ACTIVE"), (2, "FROZEN"),
    ]  # fmt: skip
    # The ledger: money crossed the edge only for the deposits and the completed withdrawal,
    # so each account's ledger sum is its free + locked.
    assert _rows(
        env.dsn,
        "SELECT b.account_id, b.asset, b.free + b.locked, l.total FROM balances b JOIN"
        " (SELECT account_id, asset, sum(amount) AS total FROM ledger_entries GROUP BY 1, 2) l"
        " USING (account_id, asset) ORDER BY 1",
    ) == [(1, "BTC", 3 * BTC, 3 * BTC), (2, "USDT", 1000 * BTC, 1000 * BTC)]
    external = "SELECT kind, sum(amount) FROM ledger_entries WHERE account_id = -1 GROUP BY 1"
    assert sorted(_rows(env.dsn, external)) == [("DEPOSIT", -1005 * BTC), ("WITHDRAWAL", 2 * BTC)]


def test_funding_steps_and_refused_commands_are_published(recorder: Recorder, env: Env) -> None:
    events = lifecycle()
    recorder.handle(_msk(events))
    updates = [e for e in events if isinstance(e, FundingUpdate)]
    got = _drain(env.funding_queue)
    assert len(got) == len(updates) == 7
    by_seq = {int(m["MessageAttributes"]["seq"]["Value"]): m for m in got}
    assert sorted(by_seq) == [u.seq for u in updates]
    for u in updates:
        envelope = by_seq[u.seq]
        body = json.loads(envelope["Message"])
        assert body == {
            "seq": u.seq, "ts": u.ts, "fundingId": u.funding_id, "kind": u.kind,
            "status": u.status, "accountId": u.account_id, "asset": u.asset,
            "amount": u.amount, "txId": u.tx_id,
        }  # fmt: skip
        attrs = {k: v["Value"] for k, v in envelope["MessageAttributes"].items()}
        assert attrs["fundingId"] == u.funding_id and attrs["status"] == u.status
        assert attrs["kind"] == u.kind and attrs["accountId"] == str(u.account_id)
    (alert,) = _drain(env.alerts_queue)
    body = json.loads(alert["Message"])
    forged = next(e for e in events if isinstance(e, AdminAction) and e.code == -1002)
    assert body["kind"] == "ADMIN_COMMAND_REFUSED" and body["seq"] == forged.seq
    assert body["principal"] == "arn:intruder" and body["command"] == "DEPOSIT"
    assert alert["Subject"].startswith("refused admin command DEPOSIT")
    assert alert["MessageAttributes"]["seq"]["Value"] == str(forged.seq)


def test_a_redelivered_batch_changes_nothing_and_publishes_again(
    recorder: Recorder, env: Env
) -> None:
    events = lifecycle()
    recorder.handle(_msk(events))
    before = dump(env.dsn)
    first = _drain(env.funding_queue)
    assert len(_drain(env.alerts_queue)) == 1
    recorder.handle(_msk(events))  # the event source delivers the same batch again
    recorder.handle(_msk(events[5:20]))  # and a part of it, cut differently
    assert dump(env.dsn) == before
    again = _drain(env.funding_queue)
    # At least once: published again, the same messages (subscribers deduplicate by seq).
    seqs = [int(m["MessageAttributes"]["seq"]["Value"]) for m in first + again]
    assert len(seqs) > len(set(seqs)) and set(seqs) == {
        e.seq for e in events if isinstance(e, FundingUpdate)
    }
    assert len(_drain(env.alerts_queue)) == 1  # again; the partial batch has no forged command


def test_a_batch_cut_between_steps_records_the_same_funding(recorder: Recorder, env: Env) -> None:
    events = lifecycle()
    recorder.handle(_msk(events))
    whole = dump(env.dsn)
    truncate_record(env.dsn)
    for i in range(0, len(events), 4):  # every request and its settlement in different batches
        recorder.handle(_msk(events[i : i + 4]))
    assert dump(env.dsn) == whole


def test_funding_history_newest_first(recorder: Recorder, env: Env) -> None:
    events = lifecycle()
    recorder.handle(_msk(events))
    rows = funding_history(env.dsn, None, 10)
    assert [r["fundingId"] for r in rows] == ["w-3", "w-2", "w-1", "tx-b", "tx-a"]
    w1 = rows[2]
    completed = [e for e in events if isinstance(e, FundingUpdate) and e.status == "COMPLETED"]
    assert w1 == {
        "fundingId": "w-1", "kind": "WITHDRAWAL", "status": "COMPLETED", "accountId": 1,
        "asset": "BTC", "amount": "2.00000000", "txId": "", "updatedAt": completed[0].ts,
    }  # fmt: skip
    mine = funding_history(env.dsn, 2, 10)
    assert [(r["fundingId"], r["amount"]) for r in mine] == [
        ("w-2", "10.00000000"), ("tx-b", "1000.00000000"),
    ]  # fmt: skip
    assert [r["fundingId"] for r in funding_history(env.dsn, 1, 2)] == ["w-3", "w-1"]
    assert funding_history(env.dsn, 99, 10) == []


def test_reconcile_catches_a_tampered_funding_row(recorder: Recorder, env: Env) -> None:
    events = lifecycle()
    recorder.handle(_msk(events))
    state = record_state(env.dsn, "test")
    assert state.high_water_mark == events[-1].seq
    assert funding_differences(engine_funding(), state.funding) == []
    with psycopg.connect(env.dsn) as conn:
        # Someone marks the pending withdrawal completed behind the engine's back.
        conn.execute("UPDATE funding SET status = 'COMPLETED' WHERE funding_id = 'w-3'")
    tampered = record_state(env.dsn, "test").funding
    lines = [str(d) for d in funding_differences(engine_funding(), tampered)]
    assert lines[0] == (
        f"funding WITHDRAWAL w-3: engine account=1 BTC {BTC} REQUESTED,"
        f" record account=1 BTC {BTC} COMPLETED"
    )
    # The row, the BTC totals of both statuses, account 1's pending withdrawals.
    assert len(lines) == 4


def test_a_forged_command_with_unstorable_claims_is_still_recorded(
    recorder: Recorder, env: Env
) -> None:
    # NUL decodes from a forged record's JSON ("\u0000") and the engine's detail re-encodes it;
    # PostgreSQL refuses it in text and jsonb, and a lone surrogate's escape in jsonb.
    forged = AdminAction(
        1, 1, "req\x00", "DEPOSIT", "arn\x00", -1002, REFUSED,
        '{"accountId":1,"note":"\\u0000\\udfff"}',
    )  # fmt: skip
    reply = Reply(2, 1, "req", "REJECTED_ADMIN", -1002, REFUSED, ())
    assert recorder.handle(_msk([forged, reply])) == {"batchItemFailures": []}
    assert _rows(env.dsn, "SELECT request_id, principal, detail FROM admin_log") == [
        ("req\ufffd", "arn\ufffd", {"accountId": 1, "note": "\ufffd?"}),
    ]
    (alert,) = _drain(env.alerts_queue)
    assert json.loads(alert["Message"])["kind"] == "ADMIN_COMMAND_REFUSED"


def test_reconcile_of_the_engines_own_events(recorder: Recorder, env: Env) -> None:
    """The engine's funding through the recorder into PostgreSQL, then reconcile's comparison
    (record_state's SQL, the engine's accessors): nothing, until the record is tampered with."""
    from bourse.domain.commands import (
        CreateAccount,
        Deposit,
        SetAccountStatus,
        WithdrawRequest,
        WithdrawSettle,
    )
    from bourse.engine import Engine
    from matching_service.reconcile import compare

    engine = Engine()
    commands: list[Any] = [
        CreateAccount("c1", 1), CreateAccount("c2", 2),
        Deposit("d1", 3, 1, "BTC", 5 * BTC, "tx-1"),
        Deposit("d2", 4, 2, "USDT", 900 * BTC),  # no txId: the engine keeps no id for it
        WithdrawRequest("w1", 5, 1, "BTC", 2 * BTC, "wd-1"),
        WithdrawSettle("s1", 6, "wd-1", "COMPLETED"),
        WithdrawRequest("w2", 7, 2, "USDT", 100 * BTC, "wd-2"),
        SetAccountStatus("f1", 8, 2, True),
    ]  # fmt: skip
    events = [ev for cmd in commands for ev in engine.process(cmd)]
    recorder.handle(_msk(events))
    assert compare(engine, record_state(env.dsn, "test")) == []
    with psycopg.connect(env.dsn) as conn:
        conn.execute("UPDATE funding SET amount = amount + 1 WHERE funding_id = 'wd-2'")
    lines = compare(engine, record_state(env.dsn, "test"))
    assert lines[0].startswith("funding WITHDRAWAL wd-2: engine account=2 USDT")
    pending = f"pending withdrawals account 2 USDT: engine {100 * BTC}, record {100 * BTC + 1}"
    assert pending in lines
    with psycopg.connect(env.dsn) as conn:
        conn.execute("UPDATE funding SET amount = amount - 1 WHERE funding_id = 'wd-2'")
        # The deposit without txId is compared in the net only.
        conn.execute("UPDATE funding SET amount = amount - 7 WHERE funding_id = 'd2'")
        conn.execute("UPDATE accounts SET status = 'ACTIVE' WHERE account_id = 2")
    assert compare(engine, record_state(env.dsn, "test")) == [
        f"funding net USDT: engine {900 * BTC}, record {900 * BTC - 7}",
        "account 2: engine FROZEN, record ACTIVE",
    ]
