"""Push without a socket (docs/webhooks.md), end to end on a private exchange: the matching
service and the gateway (ApiStack), the webhook dispatcher behind its local MSK poller and the
sender behind its local SQS poller (as `make run` runs them), on a webhooks table and FIFO
delivery queue + dead-letter queue of their own, made from template.yaml's declarations.

The receiver is a local HTTP server (http://127.0.0.1, which only the local stack's
BOURSE_WEBHOOK_ALLOW_LOCAL_HTTP admits). What it must end with is computed independently, from
the events topic: every user-data event of the account sequenced after the webhook was
registered, each once, in seq order, with the user data stream's payload.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest
from kafka import TopicPartition

from bourse.adapters import aws, kafka
from bourse.domain.event_codec import decode_events
from bourse.settings import Settings
from bourse.webhooks.events import UserEvent, user_events
from bourse.webhooks.signing import SEQ_HEADER, verify
from devstack.cfn import load_template, local_resolver
from tests.integration.api_support import REPO, ApiStack, Client, Trader, free_port, now_ms

pytestmark = pytest.mark.integration

REDIS_DB = int(os.environ.get("BOURSE_TEST_WEBHOOKS_REDIS_DB", "54"))
SELLER, BUYER = 5401, 5402


# ---------------------------------------------------------------------------- the receiver


@dataclass
class Receiver:
    """A webhook endpoint that can be up (200, after checking the signature), failing (503)
    or down (its port closed: connection refused)."""

    port: int
    secret: str = ""
    mode: str = "up"
    received: list[tuple[int, bytes]] = field(default_factory=list)
    refused: int = 0  # answers other than 2xx
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = dict(self.headers.items())
                with receiver.lock:
                    if receiver.mode != "up":
                        receiver.refused += 1
                        status = 503
                    elif not verify(receiver.secret, headers, body, now_ms()):
                        receiver.bad_signatures += 1
                        status = 401
                    else:
                        seq = int(json.loads(body)["seq"])
                        assert int(headers[SEQ_HEADER]) == seq
                        receiver.received.append((seq, body))
                        status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/bourse"

    def seqs(self) -> list[int]:
        with self.lock:
            return [seq for seq, _ in self.received]


# ---------------------------------------------------------------------------- the stack


def _resolved(logical_id: str, settings: Settings) -> dict[str, Any]:
    template = load_template()
    props: dict[str, Any] = local_resolver(template, "local", settings.region).resolve(
        {
            k: v
            for k, v in template["Resources"][logical_id]["Properties"].items()
            if k != "RedrivePolicy"
        }
    )
    return props


def _redrive(logical_id: str) -> dict[str, Any]:
    policy: dict[str, Any] = load_template()["Resources"][logical_id]["Properties"]["RedrivePolicy"]
    return policy


@contextlib.contextmanager
def private_resources(settings: Settings, suffix: str) -> Iterator[dict[str, str]]:
    """The webhooks table, the FIFO delivery queue and its dead-letter queue as template.yaml
    declares them, under names of this test's; yields the environment naming them."""
    ddb, sqs = aws.client("dynamodb"), aws.client("sqs")
    table = _resolved("WebhooksTable", settings)
    table_name = f"{table['TableName']}-test-{suffix}"
    ddb.create_table(
        TableName=table_name,
        KeySchema=table["KeySchema"],
        AttributeDefinitions=table["AttributeDefinitions"],
        GlobalSecondaryIndexes=table["GlobalSecondaryIndexes"],
        BillingMode="PAY_PER_REQUEST",
    )
    urls: list[str] = []

    def queue(logical_id: str, name: str, extra: dict[str, str]) -> tuple[str, str]:
        props = _resolved(logical_id, settings)
        attributes: dict[str, str] = {
            key: str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
            for key in ("FifoQueue", "VisibilityTimeout", "MessageRetentionPeriod",
                        "ContentBasedDeduplication")
            if key in props
        }  # fmt: skip
        attributes.update(extra)
        url = str(sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
        urls.append(url)
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
        return url, str(arn["QueueArn"])

    dlq_url, dlq_arn = queue(
        "WebhookDeadLetterQueue", f"test-whdlq-{suffix}.fifo", dict[str, str]()
    )
    redrive = {"deadLetterTargetArn": dlq_arn,
               "maxReceiveCount": _redrive("WebhookDeliveryQueue")["maxReceiveCount"]}  # fmt: skip
    queue_name = f"test-wh-{suffix}.fifo"
    queue("WebhookDeliveryQueue", queue_name, {"RedrivePolicy": json.dumps(redrive)})
    try:
        yield {
            "WEBHOOKS_TABLE": table_name,
            "WEBHOOK_QUEUE_NAME": queue_name,
            "WEBHOOK_DLQ_URL": dlq_url,
            "BOURSE_ACCOUNT_QUEUE_PREFIX": f"test-acct-{suffix}-",
            "BOURSE_WEBHOOK_ALLOW_LOCAL_HTTP": "true",
            # Retries every second or two, so that the outage below is a few seconds long.
            "BOURSE_WEBHOOK_RETRY_BASE_SECONDS": "1",
            "BOURSE_WEBHOOK_RETRY_MAX_SECONDS": "2",
            "BOURSE_WEBHOOK_TIMEOUT_SECONDS": "3",
        }
    finally:
        for url in urls:
            with contextlib.suppress(Exception):
                sqs.delete_queue(QueueUrl=url)
        with contextlib.suppress(Exception):
            ddb.delete_table(TableName=table_name)


def _spawn(stack: ApiStack, name: str, argv: list[str]) -> None:
    log = (stack.logs / f"{name}.log").open("wb")
    env = {**stack.env, "POWERTOOLS_SERVICE_NAME": name, "POWERTOOLS_METRICS_NAMESPACE": "Bourse",
           "POWERTOOLS_TRACE_DISABLED": "true"}  # fmt: skip
    stack.procs.append(
        subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    )


@pytest.fixture(scope="module")
def stack(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    suffix = uuid.uuid4().hex[:8]
    with private_resources(local_stack, suffix) as env:
        s = ApiStack(local_stack, tmp_path_factory.mktemp("webhooks"), REDIS_DB)
        s.env.update(env)
        try:
            s.start()
            events = [sys.executable, "-m", "devstack.event_sources"]
            _spawn(s, "webhook-dispatcher", [*events, "WebhookDispatcherFunction",
                                             "--group", f"{s.events_topic}.webhooks"])  # fmt: skip
            _spawn(s, "webhook-sender", [*events, "WebhookSenderFunction",
                                         "--queue", env["WEBHOOK_QUEUE_NAME"]])  # fmt: skip
            yield s
        finally:
            s.stop()


# ---------------------------------------------------------------------------- helpers


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _wait(what: str, done: Callable[[], bool], stack: ApiStack, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        stack._check_alive()
        assert time.monotonic() < deadline, f"timed out waiting for {what}; see {stack.logs}"
        time.sleep(0.1)


def account_events(stack: ApiStack, account_id: int, after_seq: int) -> list[UserEvent]:
    """The account's user-data events with a seq above ``after_seq``, from the events topic."""
    consumer = kafka.consumer(group_id=None)
    partition = TopicPartition(stack.events_topic, 0)
    found: list[UserEvent] = []
    try:
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        end = consumer.end_offsets([partition])[partition]
        while consumer.position(partition) < end:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    found += [u for u in user_events(decode_events(record.value))
                              if u.account_id == account_id and u.seq > after_seq]  # fmt: skip
    finally:
        consumer.close(autocommit=False)
    return found


def _order(client: Client, side: str, tif: str, qty: str, price: str) -> Any:
    return _ok(client.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": side,
               "type": "LIMIT", "timeInForce": tif, "quantity": qty, "price": price}))  # fmt: skip


def _trade(buyer: Client, seller: Client, rounds: int) -> None:
    """Each round: the seller rests an ask, the buyer takes half of it and cancels a bid."""
    for _ in range(rounds):
        _order(seller, "SELL", "GTC", "0.002", "30000")
        _order(buyer, "BUY", "IOC", "0.001", "30000")
        bid = _order(buyer, "BUY", "GTC", "0.001", "20000")
        _ok(
            buyer.signed(
                "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": bid["orderId"]}
            )
        )


def _in_flight(queue_name: str) -> int:
    sqs = aws.client("sqs")
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesNotVisible"])


# ---------------------------------------------------------------------------- the tests


def test_a_webhook_gets_every_user_data_event_once_in_seq_order_across_an_outage(
    stack: ApiStack,
) -> None:
    seller_t = stack.trader(SELLER, {"BTC": "10", "USDT": "1000000"})
    buyer_t: Trader = stack.trader(BUYER, {"BTC": "10", "USDT": "1000000"})
    buyer, seller = stack.client(buyer_t), stack.client(seller_t)
    receiver = Receiver(free_port())
    receiver.start()
    try:
        # Registered through the API; the secret is shown once, to the caller.
        created = _ok(buyer.signed("POST", "/api/v3/bourse/webhooks", {"url": receiver.url}))
        receiver.secret = created["secret"]
        registered_at = stack.last_event_seq()
        listed = _ok(buyer.signed("GET", "/api/v3/bourse/webhooks"))
        assert [w["webhookId"] for w in listed["webhooks"]] == [created["webhookId"]]
        assert "secret" not in listed["webhooks"][0]

        # 1. The receiver answers.
        stack.admin.deposit(BUYER, "USDT", "100", f"test-{uuid.uuid4().hex}")
        _trade(buyer, seller, 3)
        _wait("the first deliveries", lambda: receiver.seqs() == [
            u.seq for u in account_events(stack, BUYER, registered_at)], stack)  # fmt: skip
        phase1 = account_events(stack, BUYER, registered_at)

        # 2. The receiver fails every delivery (503) while trading goes on.
        with receiver.lock:
            receiver.mode = "failing"
        _trade(buyer, seller, 3)
        _wait("refused deliveries", lambda: receiver.refused >= 3, stack)

        # 3. The receiver is down (connection refused) while trading goes on.
        receiver.stop()
        stack.admin.deposit(BUYER, "BTC", "1", f"test-{uuid.uuid4().hex}")
        _trade(buyer, seller, 3)
        expected = account_events(stack, BUYER, registered_at)
        webhook = aws.client("dynamodb").get_item(
            TableName=stack.env["WEBHOOKS_TABLE"], Key={"pk": {"S": created["webhookId"]}},
            ConsistentRead=True,
        )["Item"]  # fmt: skip
        _wait("everything enqueued", lambda: int(aws.client("dynamodb").get_item(
            TableName=stack.env["WEBHOOKS_TABLE"], Key={"pk": {"S": created["webhookId"]}},
            ConsistentRead=True)["Item"]["highWater"]["N"]) >= expected[-1].seq, stack)  # fmt: skip
        # The sender has the head of the webhook's queue in hand, failing (backing off).
        _wait("a delivery attempt while down",
              lambda: _in_flight(stack.env["WEBHOOK_QUEUE_NAME"]) > 0, stack)  # fmt: skip
        before_outage_end = receiver.seqs()
        assert before_outage_end == [u.seq for u in phase1]

        # 4. The receiver comes back: it gets the rest, each once, in order.
        receiver.mode = "up"
        receiver.start()
        _wait("every event", lambda: len(receiver.seqs()) >= len(expected), stack)
    finally:
        receiver.stop()
    expected = account_events(stack, BUYER, registered_at)  # all of it, now surely committed

    assert webhook["accountId"]["N"] == str(BUYER)
    assert receiver.bad_signatures == 0
    got = receiver.seqs()
    assert got == [u.seq for u in expected], "not every event once in seq order"
    assert len(expected) > len(phase1) > 0
    assert {"executionReport", "outboundAccountPosition", "balanceUpdate"} <= {
        u.payload["e"] for u in expected
    }
    for (seq, body), event in zip(receiver.received, expected, strict=True):
        delivered = json.loads(body)
        assert delivered == {"webhookId": created["webhookId"], "seq": seq,
                             "accountId": BUYER,
                             "event": json.loads(msgspec.json.encode(event.payload))}  # fmt: skip
    # Nothing more comes (no duplicate in flight), and nothing was given up on.
    _wait("an empty delivery queue", lambda: _in_flight(stack.env["WEBHOOK_QUEUE_NAME"]) == 0,
          stack)  # fmt: skip
    assert receiver.seqs() == got
    dead = (
        aws.client("sqs")
        .receive_message(QueueUrl=stack.env["WEBHOOK_DLQ_URL"], MaxNumberOfMessages=10)
        .get("Messages", [])
    )
    assert dead == []


def test_an_operator_registers_a_webhook_and_a_queue_through_the_admin_plane(
    stack: ApiStack,
) -> None:
    account = 5403
    trader = stack.trader(account, {"USDT": "1000"})
    admin = stack.admin
    created = admin.request("POST", f"/admin/accounts/{account}/webhooks",
                            {"url": "https://hooks.example.com/bourse"})  # fmt: skip
    assert created["webhookId"].startswith("wh_") and created["secret"].startswith("whsec_")
    refused = stack.client(trader).signed(
        "POST", "/api/v3/bourse/webhooks", {"url": "http://hooks.example.com/bourse"}
    )
    assert refused.status_code == 400 and refused.json()["code"] == -1130, refused.text

    opened = admin.request("PUT", f"/admin/accounts/{account}/queue", {"principal": "123456789012"})
    policy = json.loads(
        aws.client("sqs").get_queue_attributes(
            QueueUrl=opened["queueUrl"], AttributeNames=["Policy"]
        )["Attributes"]["Policy"]
    )
    assert policy["Statement"][0]["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    listing = admin.request("GET", f"/admin/accounts/{account}/webhooks")
    assert [w["webhookId"] for w in listing["webhooks"]] == [created["webhookId"]]
    assert listing["queue"]["queueUrl"] == opened["queueUrl"]

    # The account's events reach its own queue, in order, once each.
    after = stack.last_event_seq()
    for n in range(3):
        stack.admin.deposit(account, "USDT", f"{n + 1}", f"test-{uuid.uuid4().hex}")
    expected = [u.seq for u in account_events(stack, account, after)]
    sqs = aws.client("sqs")
    got: list[int] = []

    def drained() -> bool:
        for message in sqs.receive_message(QueueUrl=opened["queueUrl"], MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            got.append(int(json.loads(message["Body"])["seq"]))
            sqs.delete_message(QueueUrl=opened["queueUrl"], ReceiptHandle=message["ReceiptHandle"])
        return len(got) >= len(expected)

    _wait("the account's queue", drained, stack)
    assert got == expected and len(expected) >= 3

    removed = admin.request("DELETE", f"/admin/accounts/{account}/webhooks/{created['webhookId']}")
    assert removed["webhookId"] == created["webhookId"]
    admin.request("DELETE", f"/admin/accounts/{account}/queue")
    assert admin.request("GET", f"/admin/accounts/{account}/webhooks") == {
        "webhooks": [], "queue": None,
    }  # fmt: skip
    with pytest.raises(sqs.exceptions.QueueDoesNotExist):
        sqs.get_queue_url(QueueName=opened["queueUrl"].rsplit("/", 1)[1])
