"""What a registration may name, and how long a failed delivery waits.

Webhook URLs are HTTPS, with a host name or a public address: a webhook is posted from inside
the exchange's VPC, so an address of a private, loopback or link-local network (or a name such
as ``localhost``) could reach what only the exchange should. The local stack's one exception,
``webhook_allow_local_http`` (bourse.settings), also accepts ``http://127.0.0.1``: the tests'
receiver. A host name is not resolved here; its addresses are the DNS operator's (see
docs/webhooks.md).

An account's own queue is read by an AWS principal that the account names: an AWS account id
or the ARN of an IAM user or role (or an account root).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

MAX_URL_LENGTH = 2048
MAX_WEBHOOKS_PER_ACCOUNT = 5
SQS_MAX_VISIBILITY_SECONDS = 43_200
LOCAL_HTTP_HOST = "127.0.0.1"
_PRINCIPAL = re.compile(
    r"^(\d{12}|arn:aws[a-z-]*:iam::\d{12}:(root|(user|role)/[\w+=,.@/-]{1,512}))$"
)
_BLOCKED_NAMES = ("localhost", "localhost.localdomain")


def check_url(url: str, allow_local_http: bool = False) -> str:
    """``url`` as given when a webhook may be posted there; ValueError says why not."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"url longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"url is not a URL: {exc}") from None
    host = parts.hostname or ""
    if parts.username is not None or parts.password is not None:
        raise ValueError("url must not carry credentials")
    if parts.fragment:
        raise ValueError("url must not have a fragment")
    if parts.scheme == "http" and allow_local_http and host == LOCAL_HTTP_HOST:
        return url
    if parts.scheme != "https":
        raise ValueError("url must be https://")
    if not host:
        raise ValueError("url has no host")
    if port not in (None, 443):
        # The functions' security group lets HTTPS out on 443 only (infra/network.yaml).
        raise ValueError("url must use HTTPS's port, 443")
    if host.lower().rstrip(".") in _BLOCKED_NAMES:
        raise ValueError("url must name a public host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return url  # a host name
    if not address.is_global:
        raise ValueError("url must name a public address")
    return url


def check_principal(principal: str) -> str:
    if not _PRINCIPAL.match(principal):
        raise ValueError(
            "principal must be an AWS account id (12 digits) or an IAM user, role or root ARN"
        )
    return principal


def backoff_seconds(receive_count: int, base: int, cap: int) -> int:
    """How long a failed delivery stays invisible before its next attempt: ``base`` seconds
    after the first attempt, doubling with each one, at most ``cap`` (SQS's limit is 12 h)."""
    exponent = min(max(0, receive_count - 1), 30)
    delay: int = base << exponent
    return max(0, min(delay, cap, SQS_MAX_VISIBILITY_SECONDS))


def queue_target_id(account_id: int) -> str:
    """The registration id of an account's queue (an account has one at most)."""
    return f"queue-{account_id}"


def account_queue_name(prefix: str, account_id: int) -> str:
    return f"{prefix}{account_id}.fifo"


def account_queue_policy(queue_arn: str, principal: str) -> dict[str, Any]:
    """The queue policy that lets the account's principal read its queue (and nothing more:
    no send, no purge, no change to the queue)."""
    aws = f"arn:aws:iam::{principal}:root" if principal.isdigit() else principal
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountReadsItsEvents",
                "Effect": "Allow",
                "Principal": {"AWS": aws},
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
                ],
                "Resource": queue_arn,
            }
        ],
    }
