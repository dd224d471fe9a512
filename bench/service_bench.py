"""`make bench-service`: the matching service's sustained rate through Kafka, beside the
engine's own rate on the same commands, in the same run.

1. Pre-generate the standard workload (``bench/workload.py``: its set-up, admin commands
   signed with a bench key in the local KMS, then ``--commands`` trading commands) into a fresh
   commands topic.
2. Engine alone: decode nothing, just ``Engine.process`` over the same commands in-process,
   the collector as in the service; prints the workload's mix (kinds, rejections, events).
3. Service: start ``python -m matching_service`` on those topics; the clock runs from its first
   committed transaction to the one that commits the last command (consumed -> events
   committed, read from the consumer group's committed offset). Batch p99 comes from the
   service's own Prometheus histogram (``histogram_quantile`` style interpolation).
4. Paced (``bench/paced.py``): the workload goes on at ``--rate`` commands/s for
   ``--paced-seconds``, each produced at its scheduled time (acks=all, as the API produces),
   and each command's reply is read from Redis as the REST path reads it; latency runs from
   the scheduled time to the reply. The rate printed is the one achieved.

Ends with a line counting the paced phase's unsent commands and missing replies, then exactly:
``service: <N> commands/s through kafka, engine alone <M> commands/s, batch p99=<x>ms,
paced <R>/s reply p99=<y>ms``
The topics are deleted afterwards. Needs the local stack (``make up``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from bench.paced import PacedResult, run_paced
from bench.production_gc import production_gc
from bench.workload import commands, setup_commands
from bench.workload_mix import Mix
from bourse.adapters import aws, redis_conn
from bourse.adapters.admin_signer import KmsAdminSigner
from bourse.adapters.kafka import librdkafka_producer, producer
from bourse.domain.admin_auth import encode_record
from bourse.domain.commands import Command
from bourse.engine import Engine
from bourse.settings import Settings, get_settings

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port for the service's metrics: another bench's service may hold any fixed one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclasses.dataclass(frozen=True)
class BenchTopics:
    suffix: str  # unique to the run: the topics', the consumer group's, the request ids'
    commands: str
    events: str


@contextlib.contextmanager
def bench_topics(settings: Settings) -> Iterator[BenchTopics]:
    """Fresh commands and events topics for one run (deleted after it), and the snapshots
    bucket the service writes to."""
    suffix = uuid.uuid4().hex[:8]
    topics = BenchTopics(suffix, f"bench.{suffix}.commands", f"bench.{suffix}.events")
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics([NewTopic(topics.commands, 1, 1), NewTopic(topics.events, 1, 1)])
    s3 = aws.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=settings.snapshots_bucket)
    try:
        yield topics
    finally:
        admin.delete_topics([topics.commands, topics.events])
        admin.close()


def bench_signer() -> tuple[str, KmsAdminSigner]:
    """A signing key of the bench's own in the local KMS, which the service is told to trust
    (``BOURSE_ADMIN_SIGNING_KEY_IDS``): the set-up's admin commands are signed with it."""
    kms = aws.client("kms")
    key_arn = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    return key_arn, KmsAdminSigner(kms, key_arn)


def engine_rate(cmds: list[Command], mix: Mix) -> float:
    """Commands per second inside ``Engine.process`` (the mix is tallied outside the clock)."""
    engine = Engine()
    process = engine.process
    clock = time.perf_counter_ns
    tally = mix.add
    inside = 0
    with production_gc():
        for cmd in cmds:
            t0 = clock()
            out = process(cmd)
            elapsed = clock() - t0
            inside += elapsed
            tally(cmd, out, elapsed)
    return len(cmds) / (inside / 1e9)


def paced_records(cmds: list[Command], suffix: str) -> list[tuple[str, bytes]]:
    """The paced commands' records, with request ids no earlier run has used (their reply
    lists may still be in Redis for the reply TTL)."""
    out = []
    for cmd in cmds:
        rid = f"{suffix}-{cmd.request_id}"
        out.append((rid, encode_record(dataclasses.replace(cmd, request_id=rid), None)))
    return out


def signed(cmds: list[Command], signer: KmsAdminSigner) -> list[bytes]:
    """Records of ``cmds``, admin ones signed by KMS (calls in parallel: one per command)."""
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda cmd: encode_record(cmd, signer), cmds))


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
    parser.add_argument("--commands", type=int, default=200_000, help="trading commands")
    parser.add_argument("--accounts", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=5_000, help="paced commands/s asked")
    parser.add_argument("--paced-seconds", type=float, default=20)
    args = parser.parse_args()
    settings = get_settings()
    load_before = os.getloadavg()[0]
    with bench_topics(settings) as topics:
        suffix, commands_topic, events_topic = topics.suffix, topics.commands, topics.events
        paced_count = int(args.rate * args.paced_seconds)
        _log(f"generating {args.commands} + {paced_count} commands into {commands_topic}")
        trading = list(commands(args.commands + paced_count, args.accounts, args.seed))
        cmds = [*setup_commands(args.accounts), *trading[: args.commands]]
        paced = paced_records(trading[args.commands :], suffix)
        # The set-up (markets, accounts, funds) is admin commands.
        key_arn, signer = bench_signer()
        p = producer(linger_ms=20, batch_size=1 << 20)
        for record in signed(cmds, signer):
            p.send(commands_topic, record)
        p.flush()
        p.close()

        _log("engine alone ...")
        mix = Mix()
        engine_cps = engine_rate(cmds, mix)
        _log(f"engine alone: {engine_cps:,.0f} commands/s")

        metrics_port = free_port()
        env = {
            **os.environ,
            "BOURSE_COMMANDS_TOPIC": commands_topic,
            "BOURSE_EVENTS_TOPIC": events_topic,
            "BOURSE_MATCHING_METRICS_PORT": str(metrics_port),
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
                f"http://127.0.0.1:{metrics_port}/metrics", timeout=5
            ).read()
            p99 = p99_ms(metrics.decode())
            _log(f"paced: {args.rate:.0f} commands/s asked for {args.paced_seconds:.0f} s ...")
            paced_config: dict[str, Any] = {"client.id": "bench-paced", "linger.ms": 1}
            result = run_paced(
                librdkafka_producer(**paced_config), commands_topic, paced,
                redis_conn.connect(settings.redis_url, socket_timeout=30),
                rate=args.rate, seconds=args.paced_seconds,
            )  # fmt: skip
        finally:
            consumer.close(autocommit=False)
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
        assert first_at is not None and first_offset is not None
        service_cps = (len(cmds) - first_offset) / max(end_at - first_at, 1e-9)
    print("the backlog, as the engine alone ran it:")
    for line in mix.lines():
        print(line)
    print(f"load average {load_before:.2f} before the run, {os.getloadavg()[0]:.2f} after, "
          f"on {os.cpu_count()} CPUs")  # fmt: skip
    print(paced_line(result))
    print(
        f"service: {service_cps:.0f} commands/s through kafka, "
        f"engine alone {engine_cps:.0f} commands/s, batch p99={p99:.1f}ms, "
        f"paced {result.achieved_rate:.0f}/s reply p99={result.percentile(0.99):.1f}ms"
    )
    return 0


def paced_line(result: PacedResult) -> str:
    return (
        f"paced: asked {result.asked_rate:.0f}/s for {result.seconds:.0f} s; sent "
        f"{result.sent} in {result.send_seconds:.1f} s ({result.achieved_rate:.0f}/s), "
        f"unsent={result.unsent}; replies {len(result.latencies_ms)} "
        f"({result.reply_rate:.0f}/s from the first send to the last reply), "
        f"missing={result.missing}; reply p50={result.percentile(0.5):.1f}ms "
        f"p99={result.percentile(0.99):.1f}ms max={result.percentile(1.0):.1f}ms; produce "
        f"acked p50={result.percentile(0.5, result.acked_ms):.1f}ms "
        f"p99={result.percentile(0.99, result.acked_ms):.1f}ms"
    )


if __name__ == "__main__":
    sys.exit(main())
