"""SQS for push without a socket: the FIFO delivery queue (dispatcher -> sender), the accounts'
own FIFO queues (created on request, with a policy for the principal the account names), and
the retry delay of a failed delivery (ChangeMessageVisibility)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

from botocore.exceptions import ClientError

from bourse.adapters import aws
from bourse.webhooks.dispatch import Outgoing
from bourse.webhooks.rules import account_queue_policy

BATCH_ENTRIES = 10  # SendMessageBatch's limit
BATCH_BYTES = 256 * 1024  # ... and its payload's
_RETENTION_SECONDS = "1209600"  # 14 days, SQS's longest


class NotEnqueued(RuntimeError):
    """Some messages of a batch were refused: the event batch fails and comes again (the
    deduplication ids keep the ones that went in from going in twice)."""


@cache
def queue_url(name: str) -> str:
    return str(aws.client("sqs").get_queue_url(QueueName=name)["QueueUrl"])


def url_of_arn(arn: str) -> str:
    return queue_url(arn.rsplit(":", 1)[1])


def _batches(messages: Sequence[Outgoing]) -> list[list[Outgoing]]:
    out: list[list[Outgoing]] = []
    size = 0
    for message in messages:
        if not out or len(out[-1]) == BATCH_ENTRIES or size + len(message.body) > BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(message)
        size += len(message.body)
    return out


def send(url: str, messages: Sequence[Outgoing]) -> None:
    """``messages`` onto the FIFO queue at ``url``, in order (batches one after the other:
    FIFO orders a group's messages by the order they were sent)."""
    sqs = aws.client("sqs")
    for batch in _batches(messages):
        answer = sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": m.body.decode(),
                    "MessageGroupId": m.group_id,
                    "MessageDeduplicationId": m.dedup_id,
                }
                for i, m in enumerate(batch)
            ],
        )
        if answer.get("Failed"):
            raise NotEnqueued(f"{url}: {answer['Failed'][:3]}")


def retry_later(queue_arn: str, receipt_handle: str, seconds: int) -> None:
    aws.client("sqs").change_message_visibility(
        QueueUrl=url_of_arn(queue_arn), ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
    )


def create_account_queue(name: str, principal: str) -> tuple[str, str]:
    """The account's FIFO queue (created unless it exists) readable by ``principal``: (url,
    arn). Deduplication ids are the dispatcher's (``queue-<account>:<seq>``), not content."""
    sqs = aws.client("sqs")
    url = str(
        sqs.create_queue(
            QueueName=name,
            Attributes={
                "FifoQueue": "true",
                "ContentBasedDeduplication": "false",
                "MessageRetentionPeriod": _RETENTION_SECONDS,
                "SqsManagedSseEnabled": "true",
            },
            tags={"bourse:purpose": "account-events"},
        )["QueueUrl"]
    )
    arn = str(
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
    )
    sqs.set_queue_attributes(
        QueueUrl=url, Attributes={"Policy": json.dumps(account_queue_policy(arn, principal))}
    )
    return url, arn


def delete_account_queue(url: str) -> None:
    try:
        aws.client("sqs").delete_queue(QueueUrl=url)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in (
            "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist",
        ):  # fmt: skip
            raise


def receive_count(record: dict[str, Any]) -> int:
    return int((record.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
