"""`make bench-restart`: how long the matching service takes from a crash to serving, with
``--commands`` (1,000,000) commands in its log.

1. A fresh commands topic gets the standard workload (``bench/workload.py``: the set-up's
   admin commands signed with a bench key in the local KMS, then the trading commands).
2. A first service instance sequences all of it, taking its periodic snapshots
   (``BOURSE_SNAPSHOT_EVERY_COMMANDS``) as in production; when every command is committed it
   is killed with SIGKILL (a crash: no snapshot at stop, so recovery replays what the newest
   periodic snapshot does not hold).
3. A second instance is started, and a probe command (a cancel of an order that does not
   exist: it changes nothing and is answered) is produced right after its exec. Measured from
   the exec: *ready* (its metrics port answers ``bourse_matching_ready 1``: recovery done,
   Redis view rebuilt) and *serving* (the probe's reply can be read from Redis as the REST
   path reads it: the first trader's answer).

Ends with exactly one line:
``restart: <N> commands in the log, serving in <s>s (ready <r>s, recovery <x>s: snapshot at
<o>, <k> replayed), failed=<f>``
where ``failed`` counts a probe without reply. Needs the local stack (``make up``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from bench.service_bench import bench_signer, bench_topics, committed, free_port, signed
from bench.workload import SYMBOL, commands, setup_commands
from bourse.adapters import redis_conn
from bourse.adapters.kafka import producer
from bourse.adapters.redis_book import reply_key
from bourse.domain.admin_auth import encode_record
from bourse.domain.commands import CancelOrder
from bourse.settings import get_settings

REPO = Path(__file__).resolve().parent.parent


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _ready(port: int) -> bool:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).read()
    except OSError:
        return False
    return b"\nbourse_matching_ready 1.0" in text


def _recovered(log_path: Path) -> dict[str, float]:
    """The second instance's "recovered" log line (JSON lines)."""
    for line in log_path.read_text(errors="replace").splitlines():
        if '"recovered"' in line:
            with contextlib.suppress(ValueError):
                record: dict[str, float] = json.loads(line[line.index("{") :])
                return record
    return {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=1_000_000, help="trading commands")
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    settings = get_settings()
    load_before = os.getloadavg()[0]
    with bench_topics(settings) as topics:
        suffix, commands_topic, events_topic = topics.suffix, topics.commands, topics.events
        key_arn, signer = bench_signer()
        setup = setup_commands(args.accounts)
        total = len(setup) + args.commands
        _log(f"producing {total} commands into {commands_topic}")
        p = producer(linger_ms=20, batch_size=1 << 20)
        for record in signed(setup, signer):
            p.send(commands_topic, record)
        for cmd in commands(args.commands, args.accounts, args.seed):
            p.send(commands_topic, encode_record(cmd, None))
        p.flush()
        p.close()
        env = {
            **os.environ,
            "BOURSE_COMMANDS_TOPIC": commands_topic,
            "BOURSE_EVENTS_TOPIC": events_topic,
            "BOURSE_ADMIN_SIGNING_KEY_IDS": key_arn,
            "BOURSE_REPLY_TTL_SECONDS": "30",
        }
        tmp = Path(os.environ.get("TMPDIR", "/tmp"))
        tp = TopicPartition(commands_topic, 0)
        consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"matching-{commands_topic}",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        first_log = tmp / f"restart-bench-{suffix}-1.log"
        _log(f"first instance sequences the log (log: {first_log})")
        with first_log.open("wb") as log:
            first = subprocess.Popen(
                [sys.executable, "-m", "matching_service"],
                env={**env, "BOURSE_MATCHING_METRICS_PORT": str(free_port())},
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 3600
        while committed(consumer, tp) < total:
            if first.poll() is not None:
                raise SystemExit(f"the first instance exited ({first.returncode}): {first_log}")
            if time.monotonic() > deadline:
                raise SystemExit("the first instance did not finish in time")
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.wait(60)
        consumer.close(autocommit=False)

        second_log = tmp / f"restart-bench-{suffix}-2.log"
        port = free_port()
        _log(f"SIGKILLed at offset {total}; second instance (log: {second_log})")
        redis = redis_conn.connect(settings.redis_url, socket_timeout=30)
        probe_id = f"restart-probe-{suffix}"
        probe = CancelOrder(probe_id, int(time.time() * 1000), 1, SYMBOL, order_id=1 << 40)
        probe_producer = producer(client_id="bench-restart-probe", linger_ms=0)
        with second_log.open("wb") as log:
            started = time.monotonic()
            second = subprocess.Popen(
                [sys.executable, "-m", "matching_service"],
                env={**env, "BOURSE_MATCHING_METRICS_PORT": str(port)},
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            probe_producer.send(commands_topic, encode_record(probe, None)).get(30)
            ready_s = serving_s = None
            failed = 0
            deadline = started + 300
            while serving_s is None or ready_s is None:
                now = time.monotonic()
                if second.poll() is not None:
                    raise SystemExit(f"the second instance exited ({second.returncode})")
                if now > deadline:
                    failed = 1
                    break
                if ready_s is None and _ready(port):
                    ready_s = now - started
                if serving_s is None and redis.lrange(reply_key(probe_id), 0, 0):
                    serving_s = time.monotonic() - started
                time.sleep(0.01)
        finally:
            probe_producer.close()
            second.send_signal(signal.SIGTERM)
            second.wait(120)
        recovered = _recovered(second_log)
    print(f"load average {load_before:.2f} before the run, {os.getloadavg()[0]:.2f} after, "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print(
        f"restart: {total} commands in the log, serving in {serving_s or 0:.1f}s "
        f"(ready {ready_s or 0:.1f}s, recovery {recovered.get('seconds', 0):.1f}s: snapshot at "
        f"{recovered.get('snapshot_offset', '?')}, {recovered.get('replayed', '?')} replayed), "
        f"failed={failed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
