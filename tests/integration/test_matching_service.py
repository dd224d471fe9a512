"""The matching service as a real process against real Kafka, Redis and moto S3.

Each test gets its own topics (so its own transactional id, consumer group and snapshot
prefix, which settings derive from the commands topic) and its own Redis database, so tests do
not see each other's data or anyone else's. Every run is compared with an uninterrupted
in-process run of the same commands through the same engine: events (all of them, read
``read_committed``), replies, Redis books and the final state hash must be identical.

Admin commands (markets, accounts, funding) go onto the log signed with a KMS key of the test's
own (moto), which the service is told to trust (``BOURSE_ADMIN_SIGNING_KEY_IDS``); forged ones
are refused by the running service.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from bourse.adapters import aws, redis_conn
from bourse.adapters.admin_signer import KmsAdminSigner
from bourse.adapters.redis_book import (
    bbo_key,
    book_key,
    read_account_status,
    read_accounts,
    read_balances,
    read_book,
    read_open_orders,
    reply_key,
)
from bourse.domain.admin_auth import encode_record
from bourse.domain.codec import encode_command
from bourse.domain.commands import (
    CancelOrder,
    CancelReplace,
    Command,
    CreateAccount,
    Deposit,
    NewOrder,
)
from bourse.domain.event_codec import decode_event, decode_events
from bourse.domain.events import AdminAction, BalanceUpdate, DepthUpdate, Event, Reply
from bourse.engine import Engine
from bourse.settings import get_settings
from matching_service.snapshots import decode_snapshot
from matching_service.workload import commands as workload

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
# A Redis database of its own: the tests flush it, so it must be one nobody else uses.
REDIS_DB = int(os.environ.get("BOURSE_TEST_MATCHING_REDIS_DB", "13"))
SNAPSHOT_BUCKET_ENV = "SNAPSHOTS_BUCKET"


# ------------------------------------------------------------------------------ harness


@dataclass
class Reference:
    """The uninterrupted in-process run."""

    events: list[Event]
    engine: Engine
    replies: dict[str, Reply] = field(default_factory=dict)


def reference(cmds: list[Command]) -> Reference:
    engine = Engine()
    events: list[Event] = []
    replies: dict[str, Reply] = {}
    for cmd in cmds:
        out = engine.process(cmd)
        events.extend(out)
        reply = out[-1]
        assert isinstance(reply, Reply)
        replies[reply.request_id] = reply
    return Reference(events, engine, replies)


class Stack:
    """One test's topics, bucket prefix and Redis database, and the service processes."""

    def __init__(self, tmp_path: Path) -> None:
        base = get_settings()
        self.bootstrap = base.kafka_bootstrap
        suffix = uuid.uuid4().hex[:10]
        self.commands_topic = f"test.ms.{suffix}.commands"
        self.events_topic = f"test.ms.{suffix}.events"
        redis_url = base.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
        self.bucket = base.snapshots_bucket
        # The admin signing key this test's service trusts (the stack's own alias is left alone).
        self.kms = aws.client("kms")
        self.key_arn = new_signing_key(self.kms)
        self.signer = KmsAdminSigner(self.kms, self.key_arn)
        self.env = {
            **os.environ,
            "BOURSE_COMMANDS_TOPIC": self.commands_topic,
            "BOURSE_EVENTS_TOPIC": self.events_topic,
            "BOURSE_REDIS_URL": redis_url,
            "BOURSE_MATCHING_METRICS_PORT": "0",
            "BOURSE_MATCHING_BATCH_MAX": "500",
            "BOURSE_SNAPSHOT_EVERY_COMMANDS": "2000",
            "BOURSE_SNAPSHOT_EVERY_SECONDS": "3600",
            "BOURSE_ADMIN_SIGNING_KEY_IDS": self.key_arn,
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        }
        self.prefix = f"engine/{self.commands_topic}/"
        self.group = f"matching-{self.commands_topic}"
        self.logs = tmp_path
        self.redis = redis_conn.connect(redis_url)
        self.redis.flushdb()
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=10000)
        try:
            admin.create_topics(
                [NewTopic(self.commands_topic, 1, 1), NewTopic(self.events_topic, 1, 1)]
            )
        finally:
            admin.close()
        self.s3 = _s3()
        with contextlib.suppress(self.s3.exceptions.BucketAlreadyOwnedByYou):
            self.s3.create_bucket(Bucket=self.bucket)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.starts = 0

    # -- service processes

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        self.starts += 1
        log = (self.logs / f"service-{self.starts}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "matching_service"],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        self.procs.append(proc)
        return proc

    def wait_log(self, start: int, text: str, timeout: float = 60.0) -> None:
        path = self.logs / f"service-{start}.log"
        deadline = time.monotonic() + timeout
        while text not in path.read_text():
            assert time.monotonic() < deadline, f"{text!r} not in {path}"
            time.sleep(0.05)

    def log_text(self) -> str:
        return "".join(p.read_text() for p in sorted(self.logs.glob("service-*.log")))

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # -- Kafka

    def produce(self, cmds: list[Command]) -> None:
        """Admin commands signed by the trusted key, as the admin plane would write them."""
        self.produce_records([encode_record(cmd, self.signer) for cmd in cmds])

    def produce_records(self, records: list[bytes]) -> None:
        from bourse.adapters.kafka import producer

        p = producer(linger_ms=5)
        for record in records:
            p.send(self.commands_topic, record)
        p.flush()
        p.close()

    def committed(self) -> int:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        try:
            return consumer.committed(TopicPartition(self.commands_topic, 0)) or 0
        finally:
            consumer.close(autocommit=False)

    def set_committed(self, offset: int) -> None:
        """Overwrite the group's committed offset (the service stopped)."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False
        )
        try:
            tp = TopicPartition(self.commands_topic, 0)
            consumer.assign([tp])
            consumer.commit({tp: OffsetAndMetadata(offset, "", -1)})
        finally:
            consumer.close(autocommit=False)

    def wait_committed(self, n: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.committed() >= n:
                return
            time.sleep(0.2)
        raise AssertionError(f"only {self.committed()} of {n} commands committed")

    def events(self) -> list[Event]:
        tp = TopicPartition(self.events_topic, 0)
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            fetch_max_bytes=64 << 20,
        )
        try:
            consumer.assign([tp])
            consumer.seek(tp, 0)
            end = consumer.end_offsets([tp])[tp]
            out: list[Event] = []
            while consumer.position(tp) < end:
                for record in consumer.poll(timeout_ms=1000).get(tp, []):
                    out.extend(decode_events(record.value))
            return out
        finally:
            consumer.close(autocommit=False)

    # -- S3

    def snapshot_keys(self) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix)
        return sorted(obj["Key"] for obj in listed.get("Contents", ()))

    def snapshot(self, key: str) -> tuple[Engine, int, str]:
        data = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        engine, meta = decode_snapshot(key, data)
        return engine, meta.offset, meta.state_hash


def new_signing_key(kms: Any) -> str:  # a boto3 KMS client (no stubs installed for KMS)
    meta = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    return str(meta["Arn"])


def _raw(item: bytes | str) -> bytes:
    assert isinstance(item, bytes), item  # the test's client does not decode responses
    return item


def _s3() -> S3Client:
    import boto3

    settings = get_settings()
    return boto3.client(
        "s3",
        endpoint_url=settings.aws_endpoint_url,
        region_name=settings.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path)
    yield s
    s.stop_all()


def terminate(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def assert_same_stream(got: list[Event], want: list[Event]) -> None:
    seqs = [e.seq for e in got]
    assert seqs == list(range(1, len(got) + 1)), "gap or duplicate in the committed stream"
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert a == b, f"first difference at seq {b.seq}"


def assert_redis_matches(stack: Stack, ref: Reference) -> None:
    last_update: dict[str, int] = {}
    for event in ref.events:
        if isinstance(event, DepthUpdate):
            last_update[event.symbol] = event.final_update_id
    for symbol in ref.engine.symbols():
        update_id, bids, asks = ref.engine.depth(symbol, 5000)
        book = read_book(stack.redis, symbol, 5000)
        assert book is not None, symbol
        assert book.lastUpdateId == update_id == last_update.get(symbol, 0)
        assert [tuple(b) for b in book.bids] == list(bids)
        assert [tuple(a) for a in book.asks] == list(asks)
        assert stack.redis.get(bbo_key(symbol)) is not None
        assert stack.redis.exists(book_key(symbol))


# ------------------------------------------------------------------------------ tests


def test_round_trip_events_replies_book_and_metrics(stack: Stack) -> None:
    cmds = list(workload(3_000, seed=11))
    ref = reference(cmds)
    proc = stack.start(BOURSE_MATCHING_METRICS_PORT="19118")
    stack.produce(cmds)
    stack.wait_committed(len(cmds))

    assert_same_stream(stack.events(), ref.events)
    # Replies: one list per request id holding exactly the command's Reply.
    for request_id in random.Random(1).sample(sorted(ref.replies), 200):
        items = stack.redis.lrange(reply_key(request_id), 0, -1)
        assert [decode_event(_raw(i)) for i in items] == [ref.replies[request_id]]
        assert 0 < stack.redis.ttl(reply_key(request_id)) <= 60
    assert_redis_matches(stack, ref)

    metrics = urllib.request.urlopen("http://127.0.0.1:19118/metrics", timeout=5).read().decode()
    assert "bourse_matching_commands_total 3000.0" in metrics
    assert f"bourse_matching_last_seq {float(ref.events[-1].seq)}" in metrics
    assert "bourse_matching_consumer_lag 0.0" in metrics

    # SIGTERM: exit 0 with a snapshot at the committed offset whose hash is the reference's.
    assert terminate(proc) == 0
    engine, offset, state_hash = stack.snapshot(stack.snapshot_keys()[-1])
    assert offset == len(cmds)
    assert state_hash == ref.engine.state_hash() == engine.state_hash()
    assert '"msg": "stopped"' in stack.log_text()


def test_crash_recovery_exactly_once(stack: Stack) -> None:
    """20,000 commands arrive while the service is SIGKILLed at random moments and restarted;
    the committed stream and final state equal one uninterrupted run."""
    cmds = list(workload(20_000, seed=7))
    ref = reference(cmds)
    rng = random.Random(2024)

    def feed() -> None:  # commands keep arriving while the service crashes and restarts
        for start in range(0, len(cmds), 2_000):
            stack.produce(cmds[start : start + 2_000])
            time.sleep(0.3)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    # Kill points spread over the whole stream: each incarnation serves, commits up to a random
    # offset of its own, and dies at a random moment after it (mid-batch, mid-commit, or
    # between the Kafka commit and the Redis write).
    targets = sorted(rng.sample(range(500, len(cmds) - 500), 6))
    kills_serving = 0
    proc = stack.start()
    for i, target in enumerate(targets):
        stack.wait_log(stack.starts, '"msg": "serving"')
        stack.wait_committed(target)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills_serving += 1
        proc = stack.start()
        if i == 2:  # and once anywhere, start-up and recovery included
            time.sleep(rng.uniform(0.5, 3.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            proc = stack.start()
    feeder.join()
    stack.wait_committed(len(cmds), timeout=150)
    stack.wait_log(stack.starts, '"msg": "serving"')
    assert terminate(proc) == 0

    log = stack.log_text()
    assert kills_serving >= 5
    assert_same_stream(stack.events(), ref.events)
    _, offset, state_hash = stack.snapshot(stack.snapshot_keys()[-1])
    assert (offset, state_hash) == (len(cmds), ref.engine.state_hash())
    assert_redis_matches(stack, ref)
    # At least one restart restored a snapshot and replayed the committed tail silently.
    assert '"msg": "snapshot restored"' in log


def test_snapshot_restore_equals_full_replay(stack: Stack) -> None:
    cmds = list(workload(6_000, seed=5))
    proc = stack.start()
    stack.produce(cmds)
    stack.wait_committed(len(cmds))
    assert terminate(proc) == 0
    keys = stack.snapshot_keys()
    assert len(keys) >= 3
    full = Engine()  # the full replay, advanced to each snapshot's offset in turn
    applied = 0
    for key in keys:
        restored, offset, state_hash = stack.snapshot(key)
        for cmd in cmds[applied:offset]:
            full.process(cmd)
        applied = offset
        assert restored.state_hash() == state_hash == full.state_hash()
    # And a restored engine continues exactly like the one that never stopped.
    restored, offset, _ = stack.snapshot(keys[0])
    twin = reference(cmds[:offset]).engine
    tail = cmds[offset:]
    assert [restored.process(c) for c in tail] == [twin.process(c) for c in tail]
    assert restored.state_hash() == full.state_hash()


def test_corrupt_newest_snapshot_falls_back(stack: Stack) -> None:
    first, second = list(workload(6_000, seed=9))[:4_000], list(workload(6_000, seed=9))[4_000:]
    ref = reference(first + second)
    proc = stack.start()
    stack.produce(first)
    stack.wait_committed(len(first))
    assert terminate(proc) == 0
    keys = stack.snapshot_keys()
    newest = keys[-1]
    assert newest.endswith(f"{len(first):020d}.snap")
    stack.s3.put_object(Bucket=stack.bucket, Key=newest, Body=b'{"format": 1}\ngarbage')

    proc = stack.start()
    stack.produce(second)
    stack.wait_committed(len(first) + len(second))
    assert terminate(proc) == 0
    log = stack.log_text()
    assert "snapshot unusable, falling back to an older one" in log
    assert newest in log
    assert_same_stream(stack.events(), ref.events)

    # With every snapshot corrupt, a full replay from offset 0 rebuilds the same state.
    for key in stack.snapshot_keys():
        stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=b"not a snapshot")
    proc = stack.start()
    stack.wait_log(stack.starts, '"msg": "serving"')
    assert terminate(proc) == 0
    assert "no valid snapshot: full replay from offset 0" in stack.log_text()
    _, offset, state_hash = stack.snapshot(stack.snapshot_keys()[-1])
    assert (offset, state_hash) == (
        len(cmds := first + second),
        reference(cmds).engine.state_hash(),
    )
    assert_same_stream(stack.events(), ref.events)


def test_sigterm_during_start_up_still_stops_cleanly(stack: Stack) -> None:
    stack.produce(list(workload(500, seed=1)))
    proc = stack.start()
    time.sleep(0.3)  # inside the interpreter's start-up: imports, not yet connected
    assert terminate(proc) == 0
    assert '"msg": "stopped"' in stack.log_text()


def test_second_instance_is_fenced(stack: Stack) -> None:
    cmds = list(workload(8_000, seed=3))
    ref = reference(cmds)
    first = stack.start()
    stack.produce(cmds[:3_000])
    stack.wait_committed(3_000)
    second = stack.start()
    deadline = time.monotonic() + 60
    while stack.log_text().count('"msg": "serving"') < 2:
        assert time.monotonic() < deadline, stack.log_text()[-2000:]
        time.sleep(0.2)
    # Both consume the new commands; the first one's transaction is refused: it exits.
    stack.produce(cmds[3_000:])
    assert first.wait(60) == 3
    stack.wait_committed(len(cmds))
    assert second.poll() is None
    assert terminate(second) == 0
    assert "fenced by a newer instance" in stack.log_text()
    assert_same_stream(stack.events(), ref.events)
    assert_redis_matches(stack, ref)


def test_forged_admin_commands_are_refused_by_the_running_service(stack: Stack) -> None:
    """A DEPOSIT written straight to bourse.commands, plain or signed with a key the service
    does not trust, changes no balance: the service answers -1002 and records an AdminAction."""
    setup: list[Command] = [
        CreateAccount("adm-create", 1, 41),
        Deposit("adm-dep", 2, 41, "USDT", 100 * 10**8, "tx-real"),
    ]
    forged_plain = Deposit("forged-plain", 3, 41, "USDT", 10**6 * 10**8, "tx-forged-1")
    untrusted = KmsAdminSigner(stack.kms, new_signing_key(stack.kms))
    forged_signed = Deposit("forged-signed", 4, 41, "USDT", 10**6 * 10**8, "tx-forged-2")
    replay = encode_record(setup[1], stack.signer)  # the genuine deposit, written again
    proc = stack.start()
    stack.produce(setup)
    stack.produce_records(
        [encode_command(forged_plain), untrusted.signed_record(forged_signed), replay]
    )
    stack.wait_committed(5)

    events = stack.events()
    replies = {e.request_id: e for e in events if isinstance(e, Reply)}
    for rid in ("forged-plain", "forged-signed"):
        assert (replies[rid].code, replies[rid].msg) == (
            -1002, "You are not authorized to execute this request."
        )  # fmt: skip
    assert [(e.request_id, e.command, e.code) for e in events if isinstance(e, AdminAction)] == [
        ("adm-create", "CREATE_ACCOUNT", 0),
        ("adm-dep", "DEPOSIT", 0),
        ("forged-plain", "DEPOSIT", -1002),
        ("forged-signed", "DEPOSIT", -1002),
        ("adm-dep", "DEPOSIT", -1002),  # the replay
    ]
    assert [e.delta for e in events if isinstance(e, BalanceUpdate)] == [100 * 10**8]
    assert read_balances(stack.redis, 41) == {"USDT": (100 * 10**8, 0)}
    assert read_accounts(stack.redis) == {41: "ACTIVE"}
    assert read_account_status(stack.redis, 41) == "ACTIVE"
    assert read_account_status(stack.redis, 42) is None
    reply = decode_event(_raw(stack.redis.lrange(reply_key("forged-signed"), 0, -1)[0]))
    assert isinstance(reply, Reply) and reply.code == -1002
    assert terminate(proc) == 0
    log = stack.log_text()
    assert log.count("admin command refused: not signed by the admin plane") == 2
    assert '"reason": "unknown key"' in log and '"reason": "unsigned"' in log


def test_a_missing_admin_signing_key_stops_start_up_with_one_clear_line(stack: Stack) -> None:
    alias = f"alias/bourse-test-{uuid.uuid4().hex[:8]}-admin-signing"
    proc = stack.start(BOURSE_ADMIN_SIGNING_KEY_IDS=alias)
    assert proc.wait(60) == 1
    lines = [line for line in stack.log_text().splitlines() if "cannot start" in line]
    assert len(lines) == 1
    assert alias in lines[0] and "NotFoundException" in lines[0]
    assert "Traceback" not in stack.log_text()


def _another_group(stack: Stack) -> dict[str, str]:
    """The service's next start under a group that has no committed offset: what Kafka leaves
    once a group's offsets expire (``offsets.retention.minutes`` after its last commit)."""
    stack.group = f"matching-{uuid.uuid4().hex[:8]}"
    return {"BOURSE_MATCHING_GROUP_ID": stack.group}


def test_a_lost_committed_offset_is_found_from_the_event_stream(stack: Stack) -> None:
    """No committed offset at start-up: the service resumes exactly where the published
    history ends (the offsets header of the last event record), never from offset 0, and
    commits that position at once."""
    cmds = list(workload(6_000, seed=21))
    ref = reference(cmds)
    proc = stack.start()
    stack.produce(cmds[:5_000])
    stack.wait_committed(5_000)
    proc.send_signal(signal.SIGKILL)  # the newest snapshot (every 2,000) is behind the position
    proc.wait()
    assert stack.snapshot_keys() and stack.snapshot(stack.snapshot_keys()[-1])[1] < 5_000
    proc = stack.start(**_another_group(stack))
    stack.wait_log(stack.starts, '"msg": "serving"')
    assert stack.committed() == 5_000  # committed again right after recovery
    stack.produce(cmds[5_000:])
    stack.wait_committed(len(cmds))
    assert terminate(proc) == 0
    assert_same_stream(stack.events(), ref.events)
    assert '"position_from": "events"' in stack.log_text()


def test_a_group_offset_behind_the_events_is_not_replayed_twice(stack: Stack) -> None:
    """Under load the group's offset is only a copy of the position, put into a batch's
    transaction now and then (BOURSE_MATCHING_OFFSET_COMMIT_MS); every event record carries
    the position itself. A group offset far behind the events (what a crash between two copies
    leaves) resumes where the events end: nothing is matched or published twice, and the
    group's copy catches up at once."""
    cmds = list(workload(6_000, seed=24))
    ref = reference(cmds)
    proc = stack.start(BOURSE_MATCHING_OFFSET_COMMIT_MS="3600000")
    stack.produce(cmds[:5_000])
    stack.wait_committed(5_000)  # the copy an idle service makes at once
    assert terminate(proc) == 0
    stack.set_committed(1_000)  # as if the last copy before a crash had been at 1,000
    proc = stack.start(BOURSE_MATCHING_OFFSET_COMMIT_MS="3600000")
    stack.wait_log(stack.starts, '"msg": "serving"')
    assert stack.committed() == 5_000
    stack.produce(cmds[5_000:])
    stack.wait_committed(len(cmds))
    assert terminate(proc) == 0
    assert_same_stream(stack.events(), ref.events)
    assert '"position_from": "events"' in (stack.logs / f"service-{stack.starts}.log").read_text()


def test_a_lost_offset_with_an_emptied_event_stream_refuses_to_start(stack: Stack) -> None:
    """No committed offset and retention has emptied bourse.events: the position between the
    newest snapshot and the log's end cannot be proved, so the service publishes nothing and
    exits with one clear line (it used to start from offset 0 and publish the log again)."""
    cmds = list(workload(3_000, seed=22))
    proc = stack.start()
    stack.produce(cmds)
    stack.wait_committed(len(cmds))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    tp = TopicPartition(stack.events_topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap)
    end = consumer.end_offsets([tp])[tp]
    consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap, request_timeout_ms=10000)
    try:
        admin.delete_records({tp: end})  # what retention does to an idle topic
    finally:
        admin.close()
    proc = stack.start(**_another_group(stack))
    assert proc.wait(120) == 4  # EXIT_DIVERGED
    assert "cannot be proved" in stack.log_text()
    consumer = KafkaConsumer(bootstrap_servers=stack.bootstrap)
    assert consumer.end_offsets([tp])[tp] == end  # nothing published again
    consumer.close()


def test_an_idle_service_commits_its_offset_again(stack: Stack) -> None:
    """Idle, the service commits the same offset again (a transaction with no record), so that
    Kafka never expires it; it keeps serving, and the stream stays exact."""
    cmds = list(workload(1_000, seed=23))
    ref = reference(cmds)
    proc = stack.start(BOURSE_MATCHING_OFFSET_REFRESH_SECONDS="1")
    stack.produce(cmds[:500])
    stack.wait_committed(500)
    stack.wait_log(stack.starts, '"msg": "offset committed again (idle)"')
    stack.produce(cmds[500:])
    stack.wait_committed(len(cmds))
    assert terminate(proc) == 0
    assert stack.committed() == len(cmds)
    assert_same_stream(stack.events(), ref.events)


def test_commands_queued_through_an_outage_are_refused_not_executed(stack: Stack) -> None:
    """Orders whose clients' recvWindow closed while the service was down are refused (-1021)
    when it comes back, not executed at the prices of then; those still in their window
    execute. A crash afterwards replays both exactly (the clocks recorded with the events)."""
    cmds = list(workload(900, seed=31))
    before, queued, fresh = cmds[:400], cmds[400:650], cmds[650:]
    proc = stack.start()
    stack.produce(before)
    stack.wait_committed(len(before))
    proc.send_signal(signal.SIGKILL)  # the outage
    proc.wait()
    now = int(time.time() * 1000)
    late = [_with_deadline(c, now + 1_000) for c in queued]
    on_time = [_with_deadline(c, now + 600_000) for c in fresh]
    stack.produce(late + on_time)
    time.sleep(2.0)  # the windows of `late` close while it is down
    proc = stack.start()
    stack.wait_committed(len(cmds))
    proc.send_signal(signal.SIGKILL)  # and recovery must judge them as the first run did
    proc.wait()
    proc = stack.start()
    stack.wait_log(stack.starts, '"msg": "serving"')
    assert terminate(proc) == 0

    ref = Engine()
    want: list[Event] = []
    for cmd in before:
        want.extend(ref.process(cmd))
    for cmd in late:
        want.extend(ref.process(cmd, now=now + 600_000))  # any time past their deadline
    for cmd in on_time:
        want.extend(ref.process(cmd, now=now + 1))
    assert_same_stream(stack.events(), want)
    replies = [e for e in want if isinstance(e, Reply)]
    judged = [r for r in replies[len(before) :] if r.request_id in {c.request_id for c in late}]
    trader = [c for c in late if isinstance(c, (NewOrder, CancelOrder, CancelReplace))]
    assert len(trader) > 100
    assert sum(r.code == -1021 for r in judged) == len(trader)
    assert all(r.code != -1021 for r in replies[len(before) + len(late) :])


def _with_deadline(cmd: Command, deadline: int) -> Command:
    """A trader's command with its request's deadline; admin commands have none."""
    if isinstance(cmd, NewOrder):
        return dataclasses.replace(cmd, deadline=deadline)
    if isinstance(cmd, CancelOrder):
        return dataclasses.replace(cmd, deadline=deadline)
    if isinstance(cmd, CancelReplace):
        return dataclasses.replace(cmd, deadline=deadline)
    return cmd


def test_a_live_view_that_lost_writes_is_rebuilt_not_patched(stack: Stack) -> None:
    """Redis loses writes under a running service (restarted empty, or from an older
    snapshot): the next batch's changes are not written on top of the wrong state; the service
    exits (5) and its restart rebuilds the view from the engine, books and accounts alike.
    (Found by `make chaos`: cancelled orders read back NEW until the service restarted.)"""
    cmds = list(workload(3_000, seed=41))
    ref = reference(cmds)
    proc = stack.start()
    stack.produce(cmds[:1_500])
    stack.wait_committed(1_500)
    stack.redis.flushdb()  # what a Redis restart without its data leaves
    stack.produce(cmds[1_500:])
    assert proc.wait(60) == 5  # EXIT_VIEW_LOST
    assert "live view lost writes" in stack.log_text()
    proc = stack.start()
    stack.wait_committed(len(cmds))
    stack.wait_log(stack.starts, '"msg": "serving"')
    assert terminate(proc) == 0
    assert_same_stream(stack.events(), ref.events)
    assert_redis_matches(stack, ref)
    balances = ref.engine.balances()
    for account in range(1, 21):
        assert read_balances(stack.redis, account) == {
            asset: pair for asset, pair in sorted(balances.get(account, {}).items())
        }, account
        view = sorted(
            (r.order.symbol, r.order.order_id) for r in read_open_orders(stack.redis, account)
        )
        engine = sorted((r.order.symbol, r.order.order_id) for r in ref.engine.open_orders(account))
        assert view == engine, account
