"""Push without a socket, the pure parts (bourse.webhooks): which events, what a delivery
carries and how it is signed, which URLs and principals are taken, the retry delays, and the
dispatch plan's idempotency by seq; then the dispatcher and the sender over fakes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics

from bourse.consumers.webhook_dispatcher import Dispatcher
from bourse.consumers.webhook_sender import WebhookSender
from bourse.domain.event_codec import encode_events
from bourse.domain.events import AccountBalances, BalanceUpdate, Event
from bourse.webhooks import signing
from bourse.webhooks.dispatch import QUEUE, WEBHOOK, Outgoing, Target, messages_for, plan
from bourse.webhooks.events import UserEvent, body, user_events
from bourse.webhooks.rules import (
    account_queue_policy,
    backoff_seconds,
    check_principal,
    check_url,
)

pytestmark = pytest.mark.unit


def balance(seq: int, account: int, ts: int = 1_000) -> BalanceUpdate:
    return BalanceUpdate(seq, ts, account, "BTC", 100_000_000)


def position(seq: int, account: int, ts: int = 1_000) -> AccountBalances:
    return AccountBalances(seq, ts, account, (("BTC", 100_000_000, 0),))


# ---------------------------------------------------------------------------- events, bodies


def test_user_events_are_the_user_data_streams_payloads_with_their_seq() -> None:
    found = user_events([balance(3, 7), position(4, 7)])
    assert [(u.account_id, u.seq, u.payload["e"]) for u in found] == [
        (7, 3, "balanceUpdate"), (7, 4, "outboundAccountPosition"),
    ]  # fmt: skip
    assert found[0].payload["d"] == "1.00000000"


def test_a_body_is_the_envelope_the_docs_describe() -> None:
    event = UserEvent(7, 3, 1_000, {"e": "balanceUpdate"})
    assert json.loads(body(event, "wh_1")) == {
        "webhookId": "wh_1", "seq": 3, "accountId": 7, "event": {"e": "balanceUpdate"},
    }  # fmt: skip
    assert json.loads(body(event)) == {"seq": 3, "accountId": 7, "event": {"e": "balanceUpdate"}}


# ---------------------------------------------------------------------------- signing


def test_a_signature_verifies_and_a_changed_byte_or_old_timestamp_does_not() -> None:
    secret = signing.new_secret()
    raw = b'{"seq":1}'
    headers = signing.headers("wh_1", secret, 1, 1_000_000, raw, attempt=1)
    assert headers[signing.SIGNATURE_HEADER].startswith("sha256=")
    lower = {k.lower(): v for k, v in headers.items()}
    assert signing.verify(secret, lower, raw, now_ms=1_000_500)
    assert not signing.verify(secret, headers, b'{"seq":2}', now_ms=1_000_500)
    assert not signing.verify("whsec_other", headers, raw, now_ms=1_000_500)
    assert not signing.verify(secret, headers, raw, now_ms=1_000_000 + signing.TOLERANCE_MS + 1)


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    expected = hmac.new(b"k", b"123.{}", hashlib.sha256).hexdigest()
    assert signing.signature("k", 123, b"{}") == f"sha256={expected}"


# ---------------------------------------------------------------------------- rules


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/x", "https://93.184.216.34/x", "https://h.example:443/"]
)
def test_https_urls_to_public_hosts_are_taken(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/x",  # not HTTPS
        "https://127.0.0.1/x", "https://10.0.0.5/x", "https://169.254.169.254/latest",
        "https://[::1]/x", "https://localhost/x",  # not public
        "https://user:pw@hooks.example.com/",  # credentials
        "https://hooks.example.com:8443/",  # only 443 leaves the VPC
        "https:///nohost", "ftp://hooks.example.com/", "https://h.example/#frag",
        "https://h.example/" + "x" * 2048,
    ],
)  # fmt: skip
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        check_url(url)


def test_local_http_only_with_the_local_setting_and_only_to_127_0_0_1() -> None:
    url = "http://127.0.0.1:8123/hook"
    with pytest.raises(ValueError):
        check_url(url)
    assert check_url(url, allow_local_http=True) == url
    with pytest.raises(ValueError):
        check_url("http://10.0.0.1:8123/hook", allow_local_http=True)


def test_principals() -> None:
    arn = "arn:aws:iam::123456789012"
    for ok in ("123456789012", f"{arn}:root", f"{arn}:role/reader", f"{arn}:user/a/b"):
        assert check_principal(ok) == ok
    for bad in ("*", "12345", "arn:aws:iam::*:root", "arn:aws:sts::123456789012:role/x"):
        with pytest.raises(ValueError):
            check_principal(bad)
    policy = account_queue_policy("arn:aws:sqs:us-east-1:1:q.fifo", "123456789012")
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
    assert "sqs:SendMessage" not in statement["Action"]


def test_backoff_doubles_from_base_to_cap() -> None:
    assert [backoff_seconds(n, 2, 900) for n in range(1, 12)] == [
        2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900,
    ]  # fmt: skip
    assert backoff_seconds(10_000, 2, 100_000) == 43_200  # SQS's longest visibility


# ---------------------------------------------------------------------------- the plan


def test_the_plan_skips_seqs_at_or_below_the_mark_and_events_before_registration() -> None:
    events = user_events([balance(1, 7, ts=5), balance(2, 7, ts=10), balance(3, 7, ts=11),
                          balance(4, 8, ts=11)])  # fmt: skip
    hook = Target("wh_a", WEBHOOK, 7, high_water=2, from_ts=10)
    assert [m.seq for m in messages_for(hook, events[:3])] == [3]
    fresh = Target("wh_b", WEBHOOK, 7, from_ts=10)
    out = messages_for(fresh, events[:3])
    assert [(m.seq, m.group_id, m.dedup_id) for m in out] == [
        (2, "wh_b", "wh_b:2"), (3, "wh_b", "wh_b:3"),
    ]  # fmt: skip
    queue = Target("queue-7", QUEUE, 7, queue_url="https://q")
    assert {m.group_id for m in messages_for(queue, events[:3])} == {"7"}
    assert "webhookId" not in json.loads(messages_for(queue, events[:1])[0].body)


def test_a_batch_delivered_again_plans_nothing_once_marks_moved() -> None:
    events = user_events([balance(5, 7), position(6, 7), balance(7, 9)])
    targets = {7: [Target("wh_a", WEBHOOK, 7)]}
    first = plan(events, targets)
    assert [(t.target_id, [m.seq for m in ms]) for t, ms in first] == [("wh_a", [5, 6])]
    moved = {7: [Target("wh_a", WEBHOOK, 7, high_water=6)]}
    assert plan(events, moved) == []


# ---------------------------------------------------------------------------- the dispatcher


class FakeDirectory:
    def __init__(self, targets: dict[int, list[Target]]) -> None:
        self._targets = targets
        self.version_number = 1
        self.scans = 0
        self.marks: dict[str, int] = {}

    def version(self) -> int:
        return self.version_number

    def targets(self) -> dict[int, list[Target]]:
        self.scans += 1
        return {a: list(ts) for a, ts in self._targets.items()}

    def advance(self, target_id: str, seq: int) -> None:
        self.marks[target_id] = max(seq, self.marks.get(target_id, 0))


def msk(events: list[Event]) -> dict[str, Any]:
    value = base64.b64encode(encode_events(events)).decode()
    return {"records": {"bourse.events-0": [{"offset": 0, "value": value}]}}


def test_the_dispatcher_enqueues_each_event_once_however_often_the_batch_comes() -> None:
    queue = Target("queue-8", QUEUE, 8, queue_url="https://q8")
    directory = FakeDirectory({7: [Target("wh_a", WEBHOOK, 7)], 8: [queue]})
    sent: list[tuple[str, list[Outgoing]]] = []
    dispatcher = Dispatcher(directory, lambda url, ms: sent.append((url, list(ms))),
                            lambda: "https://delivery", Logger(), Metrics())  # fmt: skip
    batch = msk([balance(1, 7), balance(2, 8), balance(3, 9), position(4, 7)])
    assert dispatcher.handle(batch) == {"batchItemFailures": []}
    assert dispatcher.handle(batch) == {"batchItemFailures": []}  # delivered again
    assert sorted((url, [m.seq for m in ms]) for url, ms in sent) == [
        ("https://delivery", [1, 4]), ("https://q8", [2]),
    ]  # fmt: skip
    assert directory.marks == {"wh_a": 4, "queue-8": 2}
    assert directory.scans == 1  # the version did not move: no reload


def test_a_failed_send_fails_the_batch_and_rereads_the_marks() -> None:
    directory = FakeDirectory({7: [Target("wh_a", WEBHOOK, 7)]})

    def broken(url: str, messages: Any) -> None:
        raise RuntimeError("SQS down")

    dispatcher = Dispatcher(directory, broken, lambda: "u", Logger(), Metrics())
    with pytest.raises(RuntimeError):
        dispatcher.handle(msk([balance(1, 7)]))
    dispatcher.handle(msk([balance(2, 8)]))
    assert directory.scans == 2


# ---------------------------------------------------------------------------- the sender


class Hook:
    url = "https://hooks.example.com/x"


def sqs_record(seq: int, group: str, receives: int = 1) -> dict[str, Any]:
    message = {"webhookId": group, "seq": seq, "accountId": 7, "event": {"e": "balanceUpdate"}}
    return {
        "messageId": f"m{seq}",
        "receiptHandle": f"r{seq}",
        "body": json.dumps(message),
        "attributes": {"ApproximateReceiveCount": str(receives), "MessageGroupId": group},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:bourse-local-webhooks.fifo",
    }


def make_sender(status: dict[str, int], known: set[str]) -> tuple[
    WebhookSender, list[tuple[int, dict[str, str]]], list[tuple[str, int]]
]:  # fmt: skip
    posted: list[tuple[int, dict[str, str]]] = []
    delayed: list[tuple[str, int]] = []

    class Deliveries:
        def delivery(self, webhook_id: str) -> tuple[Any, str] | None:
            return (Hook(), f"secret-{webhook_id}") if webhook_id in known else None

    def post(url: str, raw: bytes, headers: dict[str, str], timeout: float) -> int:
        webhook = headers[signing.WEBHOOK_HEADER]
        posted.append((json.loads(raw)["seq"], headers))
        if status.get(webhook, 200) >= 300:
            raise RuntimeError(f"HTTP {status[webhook]}")
        return 200

    sender = WebhookSender(Deliveries(), post, lambda arn, h, s: delayed.append((h, s)),
                           Logger(), Metrics(), retry_base_s=2, retry_max_s=60,
                           clock_ms=lambda: 5_000)  # fmt: skip
    return sender, posted, delayed


def test_the_sender_signs_each_delivery_with_its_webhooks_secret() -> None:
    sender, posted, delayed = make_sender({}, {"wh_a"})
    assert sender.handle({"Records": [sqs_record(1, "wh_a")]}) == {"batchItemFailures": []}
    (seq, headers), = posted  # fmt: skip
    raw = json.dumps(json.loads(sqs_record(1, "wh_a")["body"])).encode()
    assert seq == 1 and headers[signing.SEQ_HEADER] == "1"
    assert signing.verify("secret-wh_a", headers, raw, now_ms=5_000)
    assert delayed == []


def test_a_failure_holds_its_webhook_back_in_order_and_others_go_on() -> None:
    sender, posted, delayed = make_sender({"wh_a": 503}, {"wh_a", "wh_b"})
    records = [sqs_record(1, "wh_a", receives=3), sqs_record(2, "wh_b"), sqs_record(3, "wh_a", 3)]
    answer = sender.handle({"Records": records})
    assert [f["itemIdentifier"] for f in answer["batchItemFailures"]] == ["m1", "m3"]
    assert [seq for seq, _ in posted] == [1, 2]  # 3 is not attempted after 1 failed
    # The failed one waits its backoff (third receive: 2 * 2**2); the one behind it is
    # visible at once, held by FIFO until the first comes back.
    assert delayed == [("r1", 8), ("r3", 0)]


def test_a_removed_webhooks_deliveries_are_dropped() -> None:
    sender, posted, _ = make_sender({}, set())
    assert sender.handle({"Records": [sqs_record(1, "wh_gone")]}) == {"batchItemFailures": []}
    assert posted == []
