"""`make bench-recorder`: how fast the trade recorder keeps the record, in events/s and in the
commands' worth of events/s (what it must keep up with: the matching service's commands/s).

1. The standard workload (``bench/workload.py``, the stream ``make bench-service`` and
   ``make bench-engine`` run: its set-up, then ``--commands`` trading commands over
   ``--accounts`` accounts) through the engine in-process; the events packed into Kafka
   records exactly as the matching service packs them (whole commands, JSON arrays, <= 512 KiB).
2. The records cut into MSK deliveries as Lambda cuts them: as many records as fit in its
   6 MB invocation payload (base64 values in the event JSON), each delivery an MSK event.
3. Each delivery handed to ``Recorder.handle``, what the Lambda runs: decode the records, ONE
   PostgreSQL transaction (high-water mark, COPY + merges) as the recorder's own role
   ``bourse_recorder``, the S3 archive put (local S3, a fresh prefix; before the commit),
   then the hot-cache refresh in Redis (newest klines, 24 h tickers). SNS is left out: its
   fills go out after the commit, and moto's SNS -> SQS delivery (~100 messages/s) would time
   moto, not the recorder. Into a fresh, fully migrated database; the connections are opened
   outside the clock, as a warm Lambda container holds them.

The clock covers step 3. ``K = N x commands / events``: the events/s at the stream's own
events per command (the engine's output for exactly these commands, set-up included), i.e. the
matching service's commands/s that this recorder keeps up with. Ends with exactly one line:
``recorder: <N> events/s = <K> commands/s``; the line before it counts what went wrong
(events not recorded, archive objects missing). Needs the local stack (``make up``).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import resource
import sys
import time
import uuid
from typing import Any

import psycopg
from aws_lambda_powertools import Logger, Metrics
from psycopg import sql
from psycopg.conninfo import make_conninfo

from bench.workload import commands, setup_commands
from bourse.adapters import aws, redis_conn
from bourse.adapters.archive import EventArchive
from bourse.adapters.hot_cache import HotCache, kline_key, ticker_key
from bourse.adapters.migrations import apply_migrations
from bourse.adapters.record_store import RecordStore
from bourse.consumers.recorder import Recorder
from bourse.domain.event_codec import encode_events
from bourse.engine import Engine
from bourse.settings import get_settings
from matching_service.pipeline import join_records

RECORDER_ROLE = "bourse_recorder"  # the Lambda's BOURSE_PG_USER (template.yaml)
LAMBDA_PAYLOAD = 6 * 1024 * 1024  # a synchronous invocation's request, the MSK event's JSON
# The bench's hot cache lives in a Redis database of its own: its BTCUSDT keys must not
# replace the running stack's (the stack's Redis is a single node; ElastiCache's would not
# have numbered databases, but nothing on AWS runs this bench).
BENCH_REDIS_DB = 15


def records_for(count: int, accounts: int, seed: int) -> tuple[list[bytes], int, int]:
    """(records, events, commands) of the standard workload's first ``count`` commands."""
    engine = Engine()
    parts: list[bytes] = []
    events = 0
    cmds = [*setup_commands(accounts), *commands(count, accounts, seed)]
    for cmd in cmds:
        out = engine.process(cmd)
        events += len(out)
        parts.append(encode_events(out))
    return join_records(parts, max_record_bytes=512 * 1024), events, len(cmds)


def deliveries(records: list[bytes], topic: str) -> list[dict[str, Any]]:
    """MSK events of as many records as fit in one Lambda payload each."""
    out: list[dict[str, Any]] = []
    batch: list[dict[str, Any]] = []
    size = 1024  # the event's own fields

    def flush() -> None:
        out.append({"eventSource": "aws:kafka", "records": {f"{topic}-0": list(batch)}})
        batch.clear()

    for offset, value in enumerate(records):
        record = {
            "topic": topic, "partition": 0, "offset": offset, "timestamp": 0,
            "timestampType": "CREATE_TIME", "key": None,
            "value": base64.b64encode(value).decode(), "headers": [],
        }  # fmt: skip
        length = len(json.dumps(record)) + 2
        if batch and size + length > LAMBDA_PAYLOAD:
            flush()
            size = 1024
        batch.append(record)
        size += length
    if batch:
        flush()
    return out


def archived_seqs(s3: Any, bucket: str, prefix: str) -> int:
    """Events in the archive objects under ``prefix`` (each line one event)."""
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            count += gzip.decompress(body).count(b"\n")
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
    return count


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a local process (the recorder's PostgreSQL backend)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=100_000, help="trading commands")
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    settings = get_settings()
    records, total, ncommands = records_for(args.commands, args.accounts, args.seed)
    batches = deliveries(records, "bourse.events")
    name = f"bench_recorder_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(settings.pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(settings.pg_dsn, dbname=name)
    s3 = aws.client("s3")
    prefix = f"bench-recorder/{uuid.uuid4().hex[:8]}/"
    redis = redis_conn.connect(settings.redis_url, db=BENCH_REDIS_DB, socket_timeout=5)
    try:
        apply_migrations(dsn)
        store = RecordStore(make_conninfo(dsn, user=RECORDER_ROLE), "bench")
        recorder = Recorder(
            store=store,
            archive=EventArchive(s3, settings.archive_bucket, prefix),
            fills=None,
            logger=Logger(service="bench-recorder", level="WARNING"),
            metrics=Metrics(namespace="Bench"),
            hot=HotCache(redis),
        )
        backend = store.connection().info.backend_pid  # connected outside the clock, warm
        redis.ping()
        backend_cpu = cpu_seconds(backend)
        own = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        failed_records = 0
        for event in batches:
            answer = recorder.handle(event)
            failed_records += len(answer["batchItemFailures"])
        seconds = time.perf_counter() - started
        backend_cpu = cpu_seconds(backend) - backend_cpu
        after = resource.getrusage(resource.RUSAGE_SELF)
        own_cpu = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime
        recorder.metrics.clear_metrics()
        recorded = store.high_water_mark()
        store.close()
        archived = archived_seqs(s3, settings.archive_bucket, prefix)
        hot_missing = int(recorder.hot is not None and HotCache(redis).ticker("BTCUSDT") is None)
    finally:
        redis.delete(kline_key("BTCUSDT"), ticker_key("BTCUSDT"))
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
    # Seqs are 1..total: the mark is the number of events recorded.
    missing, unarchived = total - recorded, total - archived
    print(
        f"{ncommands} commands ({args.commands} trading) -> {total} events"
        f" ({total / ncommands:.2f} per command) in {len(records)} records, {len(batches)}"
        f" deliveries, {seconds:.2f}s; failed_records={failed_records} missing={missing}"
        f" unarchived={unarchived} hot_cache_missing={hot_missing}; CPU: recorder"
        f" {own_cpu:.2f}s, its PostgreSQL backend {backend_cpu:.2f}s",
        file=sys.stderr,
    )
    print(f"recorder: {total / seconds:.0f} events/s = {ncommands / seconds:.0f} commands/s")
    return 0 if failed_records == missing == unarchived == hot_missing == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
