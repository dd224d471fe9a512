"""`make bench-kafka-txn`: what a matching-service transaction costs the broker, with and
without the consumer group's offset in it.

The matching service commits one Kafka transaction per batch. At the REST path's rates a batch
holds one to three commands, so the transaction's own cost, not the records', is what the
broker spends per order. This runs transactions of one 200-byte record back to back through
the local broker (the service's producer settings: librdkafka, idempotent, retries backing
off 5 ms), alternately with ``send_offsets_to_transaction`` (what every batch did until the
position moved into the records' headers, docs/engine.md) and without, ``--rounds`` times
``--seconds`` each on topics of its own, and reports for each kind the transactions per
second achieved, the broker's CPU per transaction (its process's /proc times over the
phase) and the requests librdkafka sent per transaction (its statistics), so retries
(``CONCURRENT_TRANSACTIONS``) show.

Ends with one line: ``kafka-txn: with offsets <N>/s <x>ms broker CPU each; without <M>/s
<y>ms each`` (the medians of the rounds), failed transactions counted in it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka
from kafka.admin import KafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "bourse")]

from bourse.adapters import kafka as kafka_adapter  # noqa: E402
from bourse.settings import get_settings  # noqa: E402
from devstack.paths import StackPaths  # noqa: E402
from devstack.processes import PidRecord  # noqa: E402


@dataclass
class Phase:
    offsets: bool
    transactions: int = 0
    failed: int = 0
    seconds: float = 0.0
    broker_cpu: float = 0.0
    requests: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.transactions / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.broker_cpu / self.transactions if self.transactions else 0.0


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _broker_pid() -> int:
    record = PidRecord.load(StackPaths.from_settings(get_settings()).pid("kafka"))
    if record is None:
        raise SystemExit("no local Kafka broker: run `make up` first")
    return record.pid


def run_phase(bootstrap: str, offsets: bool, seconds: float, broker: int) -> Phase:
    topic = f"bench.txn.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 1, 1)])
    stats: dict[str, Any] = {}
    producer = kafka_adapter.librdkafka_producer(
        transactional_id=f"{topic}.producer",
        **{
            "linger.ms": 0,
            "socket.nagle.disable": True,
            "statistics.interval.ms": 500,
            "stats_cb": lambda raw: stats.update(json.loads(raw)),
        },
    )
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": topic})
    phase = Phase(offsets)
    try:
        producer.init_transactions(30)
        group = consumer.consumer_group_metadata()
        payload = b"x" * 200
        cpu0, t0 = _cpu_seconds(broker), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            try:
                producer.begin_transaction()
                producer.produce(topic, payload)
                if offsets:
                    partition = confluent_kafka.TopicPartition(topic, 0, phase.transactions)
                    producer.send_offsets_to_transaction([partition], group, 30)
                producer.commit_transaction(30)
                phase.transactions += 1
            except confluent_kafka.KafkaException:
                phase.failed += 1
                producer.abort_transaction(30)
        phase.seconds = time.perf_counter() - t0
        phase.broker_cpu = _cpu_seconds(broker) - cpu0
        time.sleep(1.0)  # one more statistics callback, covering the whole phase
        producer.poll(0)
        totals: dict[str, int] = {}
        for broker_stats in stats.get("brokers", {}).values():
            for name, count in (broker_stats.get("req") or {}).items():
                totals[name] = totals.get(name, 0) + int(count)
        if phase.transactions:
            phase.requests = {
                name: count / phase.transactions
                for name, count in sorted(totals.items())
                if count / phase.transactions >= 0.01
            }
    finally:
        consumer.close()
        admin.delete_topics([topic])
        admin.close()
    return phase


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bootstrap = get_settings().kafka_bootstrap
    broker = _broker_pid()
    phases: dict[bool, list[Phase]] = {True: [], False: []}
    for _ in range(args.rounds):
        for offsets in (True, False):
            phase = run_phase(bootstrap, offsets, args.seconds, broker)
            phases[offsets].append(phase)
            requests = " ".join(f"{k}={v:.2f}" for k, v in phase.requests.items())
            print(
                f"{'with' if offsets else 'without'} offsets: {phase.rate:.0f} transactions/s, "
                f"{phase.cpu_ms:.2f} ms broker CPU each, failed={phase.failed}; "
                f"requests per transaction: {requests}",
                file=sys.stderr,
                flush=True,
            )

    def median(kind: bool) -> tuple[float, float, int]:
        runs = phases[kind]
        return (
            statistics.median(p.rate for p in runs),
            statistics.median(p.cpu_ms for p in runs),
            sum(p.failed for p in runs),
        )

    (r1, c1, f1), (r2, c2, f2) = median(True), median(False)
    print(
        f"kafka-txn: with offsets {r1:.0f}/s {c1:.2f}ms broker CPU each; "
        f"without {r2:.0f}/s {c2:.2f}ms each; failed={f1 + f2}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
