"""`make reconcile`: the engine's balances against the record's balance projection.

The engine side is rebuilt exactly as the matching service recovers: the newest valid snapshot
at or below the committed commands offset, then the commands up to that offset replayed
(nothing published). The record side is PostgreSQL's ``balances`` (fee account included), read
in one snapshot together with the recorder's high-water mark. The two are compared only at the
same seq: if the recorder has not caught up with bourse.events yet, this waits for it; if the
exchange moved on while the engine was being rebuilt, it starts over.

Prints one line per difference, then exactly one summary line:
``reconcile: 0 differences`` (exit 0) or ``reconcile: N differences`` (exit 1).
"""

from __future__ import annotations

import argparse
import sys
import time

import psycopg
from kafka import TopicPartition

from bourse.adapters import aws
from bourse.adapters import kafka as kafka_adapter
from bourse.engine import Engine
from bourse.record.reconcile import Balances, differences
from bourse.settings import Settings, get_settings
from matching_service.pipeline import run_batch
from matching_service.service import last_published_seq
from matching_service.snapshots import SnapshotStore


class NotComparable(Exception):
    """The engine and the record are not at the same seq (yet)."""


class RecordBehind(NotComparable):
    """The recorder did not reach the end of bourse.events within the wait: retrying the
    same wait would not help."""


def record_state(dsn: str, consumer: str) -> tuple[int, Balances]:
    """(high-water mark, balances) from one consistent snapshot of the record."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        row = conn.execute(
            "SELECT last_seq FROM applied_events WHERE consumer = %s", (consumer,)
        ).fetchone()
        hwm = int(row[0]) if row else 0
        out: Balances = {}
        for account, asset, free, locked in conn.execute(
            "SELECT account_id, asset, free, locked FROM balances WHERE free <> 0 OR locked <> 0"
        ).fetchall():
            out.setdefault(int(account), {})[str(asset)] = (int(free), int(locked))
    return hwm, out


def engine_at_committed(settings: Settings) -> tuple[Engine, int, int]:
    """(engine, committed offset, last seq) rebuilt from the newest snapshot plus replay."""
    tp = TopicPartition(settings.commands_topic, 0)
    consumer = kafka_adapter.consumer(
        group_id=settings.matching_group_id, fetch_max_bytes=64 << 20, client_id="reconcile"
    )
    try:
        consumer.assign([tp])
        committed = consumer.committed(tp) or 0
        store = SnapshotStore(aws.client("s3"), settings.snapshots_bucket, settings.snapshot_prefix)
        restored = store.load_newest(committed)
        engine = restored.engine
        start = restored.meta.offset if restored.meta else 0
        last_seq = restored.meta.last_seq if restored.meta else 0
        consumer.seek(tp, start)
        while consumer.position(tp) < committed:
            polled = consumer.poll(timeout_ms=1000, max_records=5000).get(tp, [])
            records = [(r.offset, r.value) for r in polled if r.offset < committed]
            if records:
                out = run_batch(engine, records, publish=False, want_replies=False)
                last_seq = out.last_seq or last_seq
    finally:
        consumer.close(autocommit=False)
    return engine, committed, last_seq


def reconcile_once(settings: Settings, wait_s: float) -> list[str]:
    published = last_published_seq(settings) or 0
    deadline = time.monotonic() + wait_s
    hwm, _ = record_state(settings.pg_dsn, settings.recorder_consumer)
    while hwm < published:
        if time.monotonic() > deadline:
            raise RecordBehind(f"the record is at seq {hwm}, bourse.events at {published}")
        time.sleep(0.5)
        hwm, _ = record_state(settings.pg_dsn, settings.recorder_consumer)
    engine, _, seq = engine_at_committed(settings)
    hwm, record = record_state(settings.pg_dsn, settings.recorder_consumer)
    if hwm != seq:
        raise NotComparable(f"engine rebuilt at seq {seq}, the record is at seq {hwm}")
    return [str(d) for d in differences(engine.balances(), record)]


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
