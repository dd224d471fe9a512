"""`make bench-service`: the matching service's sustained rate through Kafka, beside the
engine's own rate on the same commands, in the same run.

1. Pre-generate N commands (the standard workload) into a fresh commands topic.
2. Engine alone: decode nothing, just ``Engine.process`` over the same commands in-process.
3. Service: start ``python -m matching_service`` on those topics; the clock runs from its first
   committed transaction to the one that commits the last command (consumed -> events
   committed, read from the consumer group's committed offset). Batch p99 comes from the
   service's own Prometheus histogram (``histogram_quantile`` style interpolation).

Ends with exactly one line:
``service: <N> commands/s through kafka, engine alone <M> commands/s, batch p99=<x>ms``
The topics are deleted afterwards. Needs the local stack (``make up``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from bourse.adapters import aws
from bourse.adapters.admin_signer import KmsAdminSigner
from bourse.adapters.kafka import producer
from bourse.domain.admin_auth import encode_record
from bourse.domain.commands import Command
from bourse.engine import Engine
from bourse.settings import get_settings
from matching_service.workload import commands

REPO = Path(__file__).resolve().parent.parent
METRICS_PORT = 19_208


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def engine_rate(cmds: list[Command]) -> float:
    engine = Engine()
    process = engine.process
    started = time.perf_counter()
    for cmd in cmds:
        process(cmd)
    return len(cmds) / (time.perf_counter() - started)


def committed(consumer: KafkaConsumer, tp: TopicPartition) -> int:
    return consumer.committed(tp) or 0


def p99_ms(metrics_text: str) -> float:
    """99th percentile of bourse_matching_batch_seconds, interpolated inside its bucket."""
    buckets: list[tuple[float, float]] = []
    for line in metrics_text.splitlines():
        if line.startswith("bourse_matching_batch_seconds_bucket{"):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append(
                (float("inf") if bound == "+Inf" else float(bound), float(line.split()[-1]))
            )
    buckets.sort()
    total = buckets[-1][1]
    if total == 0:
        return 0.0
    rank = 0.99 * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return prev_le * 1000
            return (prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)) * 1000
        prev_le, prev_count = le, count
    return prev_le * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commands", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    settings = get_settings()
    suffix = uuid.uuid4().hex[:8]
    commands_topic = f"bench.{suffix}.commands"
    events_topic = f"bench.{suffix}.events"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics([NewTopic(commands_topic, 1, 1), NewTopic(events_topic, 1, 1)])
    s3 = aws.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=settings.snapshots_bucket)
    try:
        _log(f"generating {args.commands} commands into {commands_topic}")
        cmds = list(commands(args.commands, seed=args.seed))
        # The set-up (markets, accounts, funds) is admin commands: signed with a bench key in
        # the local KMS, which the service is told to trust.
        kms = aws.client("kms")
        key_arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
            "Arn"
        ]
        signer = KmsAdminSigner(kms, key_arn)
        p = producer(linger_ms=20, batch_size=1 << 20)
        for cmd in cmds:
            p.send(commands_topic, encode_record(cmd, signer))
        p.flush()
        p.close()

        _log("engine alone ...")
        engine_cps = engine_rate(cmds)
        _log(f"engine alone: {engine_cps:,.0f} commands/s")

        env = {
            **os.environ,
            "BOURSE_COMMANDS_TOPIC": commands_topic,
            "BOURSE_EVENTS_TOPIC": events_topic,
            "BOURSE_MATCHING_METRICS_PORT": str(METRICS_PORT),
            "BOURSE_ADMIN_SIGNING_KEY_IDS": key_arn,
            # A short TTL: the bench leaves one reply list per command in Redis.
            "BOURSE_REPLY_TTL_SECONDS": "30",
        }
        log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"service-bench-{suffix}.log"
        _log(f"service ... (log: {log_path})")
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "matching_service"],
                env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        tp = TopicPartition(commands_topic, 0)
        consumer = KafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=f"matching-{commands_topic}",
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        try:
            first_at = first_offset = None
            deadline = time.monotonic() + 1800
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"the service exited ({proc.returncode}); see {log_path}")
                if time.monotonic() > deadline:
                    raise SystemExit("the service did not finish in time")
                now = time.monotonic()
                done = committed(consumer, tp)
                if first_at is None and done > 0:
                    first_at, first_offset = now, done
                if done >= len(cmds):
                    end_at = now
                    break
                time.sleep(0.05)
            metrics = urllib.request.urlopen(
                f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5
            ).read()
            p99 = p99_ms(metrics.decode())
        finally:
            consumer.close(autocommit=False)
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
        assert first_at is not None and first_offset is not None
        service_cps = (len(cmds) - first_offset) / max(end_at - first_at, 1e-9)
    finally:
        admin.delete_topics([commands_topic, events_topic])
        admin.close()
    print(
        f"service: {service_cps:.0f} commands/s through kafka, "
        f"engine alone {engine_cps:.0f} commands/s, batch p99={p99:.1f}ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
