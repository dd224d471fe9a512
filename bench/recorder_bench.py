"""`make bench-recorder`: events/s the trade recorder writes into PostgreSQL.

1. Run N workload commands through the engine in-process and pack the events into Kafka-sized
   records exactly as the matching service does (whole commands, JSON arrays).
2. Into a fresh database (every migration applied), feed the records in batches of B records,
   each batch as the recorder Lambda handles one MSK batch: decode the records, then
   ``RecordStore.write`` (one transaction: high-water mark, COPY + merges, commit). The clock
   covers decoding and writing; S3 and SNS are not part of "into PostgreSQL".

Ends with exactly one line: ``recorder: <N> events/s``. Needs the local stack (``make up``).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bourse.adapters.migrations import apply_migrations
from bourse.adapters.record_store import RecordStore
from bourse.domain.event_codec import decode_events
from bourse.domain.events import Event
from bourse.engine import Engine
from bourse.settings import get_settings
from matching_service.pipeline import join_records
from matching_service.workload import commands


def records_for(count: int, seed: int) -> tuple[list[bytes], int]:
    from bourse.domain.event_codec import encode_events

    engine = Engine()
    parts: list[bytes] = []
    n = 0
    for cmd in commands(count, seed=seed):
        out: list[Event] = engine.process(cmd)
        n += len(out)
        parts.append(encode_events(out))
    return join_records(parts, max_record_bytes=512 * 1024), n


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=40_000)
    parser.add_argument("--batch-records", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    settings = get_settings()
    records, total = records_for(args.commands, args.seed)
    name = f"bench_recorder_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(settings.pg_dsn, dbname=name)
    try:
        apply_migrations(dsn)
        store = RecordStore(dsn, "bench")
        store.connection()  # connect outside the clock, as a warm Lambda container has
        batches = [
            records[i : i + args.batch_records] for i in range(0, len(records), args.batch_records)
        ]
        started = time.perf_counter()
        applied = 0
        for batch in batches:
            events: list[Event] = []
            for value in batch:
                events.extend(decode_events(value))
            applied += store.write(events).applied
        seconds = time.perf_counter() - started
        store.close()
        assert applied == total, (applied, total)
        print(
            f"{total} events in {len(records)} records, {len(batches)} batches, {seconds:.2f}s",
            file=sys.stderr,
        )
    finally:
        # FORCE cannot terminate an autovacuum worker busy with the fresh tables (the app's
        # role may not signal it): wait it out.
        for attempt in range(60):
            try:
                with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
                    conn.execute(
                        sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
                    )
                break
            except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
                if attempt == 59:
                    raise
                time.sleep(0.5)
    print(f"recorder: {total / seconds:.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
