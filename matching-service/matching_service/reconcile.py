"""`make reconcile`: the engine's balances, funding and accounts against the record's.

The engine side is rebuilt exactly as the matching service recovers: the newest valid snapshot
at or below the committed commands offset, then the commands up to that offset replayed
(nothing published; admin records verified with the same trusted keys as the service). The
record side is PostgreSQL's ``balances`` (fee account included), ``funding`` and ``accounts``,
read in one snapshot together with the recorder's high-water mark. The two are compared only at
the same seq: if the recorder has not caught up with bourse.events yet, this waits for it; if
the exchange moved on while the engine was being rebuilt, it starts over.

Compared: every (account, asset) balance; every deposit (by tx id) and withdrawal (by id) with
its account, asset, amount and status; per asset, the totals of deposits credited and of
withdrawals by status; per account and asset, what pending withdrawals hold locked; per
asset, the money on deposit (deposits credited - withdrawals completed, every deposit
included) against the sum of the engine's balances; every account's status.

Prints one line per difference, then exactly one summary line:
``reconcile: 0 differences`` (exit 0) or ``reconcile: N differences`` (exit 1).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

import psycopg
from kafka import TopicPartition

from bourse.adapters import aws
from bourse.adapters import kafka as kafka_adapter
from bourse.engine import Engine
from bourse.record.reconcile import (
    Balances,
    Funding,
    FundingItem,
    differences,
    funding_differences,
    net_differences,
)
from bourse.settings import Settings, get_settings
from matching_service.admin_keys import load_verifier
from matching_service.clocks import RecordedClocks
from matching_service.pipeline import run_batch
from matching_service.published import last_published, last_published_seq, position
from matching_service.snapshots import SnapshotStore


class NotComparable(Exception):
    """The engine and the record are not at the same seq (yet)."""


class RecordBehind(NotComparable):
    """The recorder did not reach the end of bourse.events within the wait: retrying the
    same wait would not help."""


@dataclass
class RecordState:
    high_water_mark: int
    balances: Balances = field(default_factory=dict)
    # Deposits with a tx id and every withdrawal: what the engine keeps, by (id, kind). A
    # deposit without tx id is keyed by its request id and the engine does not keep it.
    funding: Funding = field(default_factory=dict)
    # asset -> deposits credited - withdrawals completed, every deposit included
    net: dict[str, int] = field(default_factory=dict)
    accounts: dict[int, str] = field(default_factory=dict)


_NET = """
SELECT asset, sum(CASE WHEN kind = 'DEPOSIT' THEN amount ELSE -amount END)
FROM funding WHERE status IN ('CREDITED', 'COMPLETED') GROUP BY asset
"""


def record_state(dsn: str, consumer: str) -> RecordState:
    """The high-water mark and the state compared, from one consistent snapshot."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        row = conn.execute(
            "SELECT last_seq FROM applied_events WHERE consumer = %s", (consumer,)
        ).fetchone()
        state = RecordState(int(row[0]) if row else 0)
        for account, asset, free, locked in conn.execute(
            "SELECT account_id, asset, free, locked FROM balances WHERE free <> 0 OR locked <> 0"
        ).fetchall():
            state.balances.setdefault(int(account), {})[str(asset)] = (int(free), int(locked))
        for funding_id, kind, account, asset, amount, status in conn.execute(
            "SELECT funding_id, kind, account_id, asset, amount, status FROM funding"
            " WHERE kind = 'WITHDRAWAL' OR tx_id <> ''"
        ).fetchall():
            item = FundingItem(int(account), str(asset), int(amount), str(status))
            state.funding[(str(funding_id), str(kind))] = item
        for asset, total in conn.execute(_NET).fetchall():
            state.net[str(asset)] = int(total)
        for account, status in conn.execute("SELECT account_id, status FROM accounts").fetchall():
            state.accounts[int(account)] = str(status)
    return state


def engine_funding(engine: Engine) -> Funding:
    """The engine's deposits (by tx id) and withdrawals (by id), as the record keys them."""
    out: Funding = {}
    for tx_id, (account, asset, amount) in engine.deposits().items():
        out[(tx_id, "DEPOSIT")] = FundingItem(account, asset, amount, "CREDITED")
    for wid, (account, asset, amount, status) in engine.withdrawals().items():
        out[(wid, "WITHDRAWAL")] = FundingItem(account, asset, amount, status)
    return out


def engine_net(engine: Engine) -> dict[str, int]:
    """asset -> money on deposit: the sum of every account's free + locked (fee account
    included), which the engine keeps equal to deposits - completed withdrawals."""
    out: dict[str, int] = {}
    for assets in engine.balances().values():
        for asset, (free, locked) in assets.items():
            out[asset] = out.get(asset, 0) + free + locked
    return out


def compare(engine: Engine, record: RecordState) -> list[str]:
    """One line per difference, balances first."""
    lines = [str(d) for d in differences(engine.balances(), record.balances)]
    lines += [str(d) for d in funding_differences(engine_funding(engine), record.funding)]
    lines += [str(d) for d in net_differences(engine_net(engine), record.net)]
    mine, theirs = engine.accounts(), record.accounts
    for account in sorted(mine.keys() | theirs.keys()):
        if mine.get(account) != theirs.get(account):
            lines.append(
                f"account {account}: engine {mine.get(account) or 'none'},"
                f" record {theirs.get(account) or 'none'}"
            )
    return lines


def engine_at_committed(settings: Settings) -> tuple[Engine, int, int]:
    """(engine, committed position, last seq) rebuilt from the newest snapshot plus replay.
    The position is the service's own (``published.position``): the group's offset alone may
    lag the events by up to ``matching_offset_commit_ms``."""
    tp = TopicPartition(settings.commands_topic, 0)
    consumer = kafka_adapter.consumer(
        group_id=settings.matching_group_id, fetch_max_bytes=64 << 20, client_id="reconcile"
    )
    try:
        consumer.assign([tp])
        committed = position(last_published(settings), consumer.committed(tp)) or 0
        # Admin records verify against the service's trusted keys, or the replay would refuse
        # them and diverge from what the service did.
        verifier = load_verifier(settings)
        store = SnapshotStore(aws.client("s3"), settings.snapshots_bucket, settings.snapshot_prefix)
        restored = store.load_newest(committed)
        engine = restored.engine
        start = restored.meta.offset if restored.meta else 0
        last_seq = restored.meta.last_seq if restored.meta else 0
        # Late commands are judged by the clocks the service recorded, as it judged them.
        clocks = RecordedClocks(settings, start)
        consumer.seek(tp, start)
        while consumer.position(tp) < committed:
            polled = consumer.poll(timeout_ms=1000, max_records=5000).get(tp, [])
            records = [(r.offset, r.value) for r in polled if r.offset < committed]
            if records:
                out = run_batch(
                    engine, records, publish=False, want_replies=False, verifier=verifier,
                    clock=clocks.at,
                )  # fmt: skip
                last_seq = out.last_seq or last_seq
    finally:
        consumer.close(autocommit=False)
    return engine, committed, last_seq


def reconcile_once(settings: Settings, wait_s: float) -> list[str]:
    published = last_published_seq(settings) or 0
    deadline = time.monotonic() + wait_s
    hwm = record_state(settings.pg_dsn, settings.recorder_consumer).high_water_mark
    while hwm < published:
        if time.monotonic() > deadline:
            raise RecordBehind(f"the record is at seq {hwm}, bourse.events at {published}")
        time.sleep(0.5)
        hwm = record_state(settings.pg_dsn, settings.recorder_consumer).high_water_mark
    engine, _, seq = engine_at_committed(settings)
    record = record_state(settings.pg_dsn, settings.recorder_consumer)
    if record.high_water_mark != seq:
        raise NotComparable(
            f"engine rebuilt at seq {seq}, the record is at seq {record.high_water_mark}"
        )
    return compare(engine, record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matching_service.reconcile")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the record")
    args = parser.parse_args(argv)
    settings = get_settings()
    for attempt in range(3):
        try:
            lines = reconcile_once(settings, args.wait)
            break
        except NotComparable as exc:
            if attempt == 2 or isinstance(exc, RecordBehind):
                print(f"reconcile: not comparable: {exc}", file=sys.stderr)
                return 2
    for line in lines:
        print(line)
    print(f"reconcile: {len(lines)} differences")
    return 0 if not lines else 1


if __name__ == "__main__":
    sys.exit(main())
