"""Webhook and account-queue registrations in DynamoDB (the WebhooksTable of template.yaml).

One item per target, hash key ``pk``: a webhook (``wh_<hex>``: ``url``, ``secretCiphertext``)
or an account's queue (``queue-<accountId>``: ``queueUrl``, ``queueArn``, ``principal``), each
with ``kind``, ``accountId`` (the ``by-account`` index), ``status``, ``createdAt`` and
``highWater``, the highest seq the dispatcher has enqueued for it. One more item, ``#version``,
counts the changes: every registration and removal bumps it in the same transaction, so the
dispatcher reads that one item per batch (consistently) and reloads the registrations only when
it moved, and an event sequenced after a registration's answer is never missed.

A webhook's secret signs its deliveries, so it is needed in clear: like an API key's HMAC
secret (bourse.adapters.api_keys), it is stored encrypted with the API key KMS key, here under
an encryption context naming the webhook (a ciphertext copied to another item does not
decrypt), and shown once, when the webhook is created.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from bourse.adapters import aws
from bourse.settings import get_settings
from bourse.webhooks.dispatch import QUEUE, WEBHOOK, Target
from bourse.webhooks.registry import Registry
from bourse.webhooks.rules import MAX_WEBHOOKS_PER_ACCOUNT, queue_target_id
from bourse.webhooks.signing import new_secret

ACTIVE = "ACTIVE"
BY_ACCOUNT_INDEX = "by-account"
VERSION_KEY = "#version"
_CONTEXT_KEY = "bourse:webhookId"


T = TypeVar("T", bound="_Table")


class TooManyWebhooks(ValueError):
    pass


@dataclass(frozen=True)
class Registration:
    target_id: str
    kind: str
    account_id: int
    status: str = ACTIVE
    created_at_ms: int = 0
    high_water: int = 0
    url: str = ""
    queue_url: str = ""
    queue_arn: str = ""
    principal: str = ""

    def as_json(self) -> dict[str, Any]:
        common = {
            "accountId": self.account_id,
            "status": self.status,
            "createdAt": self.created_at_ms,
            "lastEnqueuedSeq": self.high_water,
        }
        if self.kind == WEBHOOK:
            return {"webhookId": self.target_id, "url": self.url, **common}
        return {"queueUrl": self.queue_url, "queueArn": self.queue_arn,
                "principal": self.principal, **common}  # fmt: skip

    def target(self) -> Target:
        return Target(self.target_id, self.kind, self.account_id, self.high_water, self.queue_url,
                      self.created_at_ms)  # fmt: skip


def _registration(item: dict[str, Any]) -> Registration:
    def s(name: str) -> str:
        return str(item.get(name, {}).get("S", ""))

    def n(name: str) -> int:
        return int(item.get(name, {}).get("N", "0"))

    return Registration(
        target_id=s("pk"),
        kind=s("kind"),
        account_id=n("accountId"),
        status=s("status") or ACTIVE,
        created_at_ms=n("createdAt"),
        high_water=n("highWater"),
        url=s("url"),
        queue_url=s("queueUrl"),
        queue_arn=s("queueArn"),
        principal=s("principal"),
    )


class _Table:
    """The webhooks table. Each role below reads or writes only what it needs, so that each
    function's IAM policy grants only that (infra/deploy_check/calls.py checks it)."""

    def __init__(self, table: str, kms_key_id: str) -> None:
        self.table = table
        self.kms_key_id = kms_key_id

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    def _bump(self) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self.table,
                "Key": {"pk": {"S": VERSION_KEY}},
                "UpdateExpression": "ADD version :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        }

    def _pages(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        paginator = self._ddb.get_paginator(operation)
        for page in paginator.paginate(TableName=self.table, **kwargs):
            yield from page.get("Items", [])

    def get(self, target_id: str) -> Registration | None:
        item = self._ddb.get_item(
            TableName=self.table, Key={"pk": {"S": target_id}}, ConsistentRead=True
        ).get("Item")
        return None if item is None or "kind" not in item else _registration(item)


class Registrations(_Table):
    """The registrations as the API and the admin plane change them."""

    def create_webhook(self, account_id: int, url: str, created_at_ms: int) -> tuple[
        Registration, str
    ]:  # fmt: skip
        """A new ACTIVE webhook and its secret (in clear: the only time it is shown)."""
        webhooks = [r for r in self.of_account(account_id) if r.kind == WEBHOOK]
        if len(webhooks) >= MAX_WEBHOOKS_PER_ACCOUNT:
            raise TooManyWebhooks(f"at most {MAX_WEBHOOKS_PER_ACCOUNT} webhooks per account")
        webhook_id = "wh_" + secrets.token_hex(12)
        secret = new_secret()
        ciphertext = aws.client("kms").encrypt(
            KeyId=self.kms_key_id,
            Plaintext=secret.encode(),
            EncryptionContext={_CONTEXT_KEY: webhook_id},
        )["CiphertextBlob"]
        item = {
            "pk": {"S": webhook_id},
            "kind": {"S": WEBHOOK},
            "accountId": {"N": str(account_id)},
            "status": {"S": ACTIVE},
            "createdAt": {"N": str(created_at_ms)},
            "highWater": {"N": "0"},
            "url": {"S": url},
            "secretCiphertext": {"S": base64.b64encode(ciphertext).decode()},
        }
        self._ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": self.table, "Item": item,
                         "ConditionExpression": "attribute_not_exists(pk)"}},
                self._bump(),
            ]
        )  # fmt: skip
        return _registration(item), secret

    def put_queue(
        self, account_id: int, queue_url: str, queue_arn: str, principal: str, created_at_ms: int
    ) -> Registration:
        """The account's queue registration (replacing one for the same account: a new
        principal keeps the queue and its high-water mark)."""
        current = self.get(queue_target_id(account_id))
        item = {
            "pk": {"S": queue_target_id(account_id)},
            "kind": {"S": QUEUE},
            "accountId": {"N": str(account_id)},
            "status": {"S": ACTIVE},
            "createdAt": {"N": str(current.created_at_ms if current else created_at_ms)},
            "highWater": {"N": str(current.high_water if current else 0)},
            "queueUrl": {"S": queue_url},
            "queueArn": {"S": queue_arn},
            "principal": {"S": principal},
        }
        self._ddb.transact_write_items(
            TransactItems=[{"Put": {"TableName": self.table, "Item": item}}, self._bump()]
        )
        return _registration(item)

    def of_account(self, account_id: int) -> list[Registration]:
        out: list[Registration] = []
        for item in self._pages(
            "query",
            IndexName=BY_ACCOUNT_INDEX,
            KeyConditionExpression="accountId = :a",
            ExpressionAttributeValues={":a": {"N": str(account_id)}},
        ):
            out.append(_registration(item))
        return sorted(out, key=lambda r: (r.kind, r.created_at_ms, r.target_id))

    def delete(self, target_id: str, account_id: int) -> Registration | None:
        """Removes the account's target; None when it has no such target."""
        current = self.get(target_id)
        if current is None or current.account_id != account_id:
            return None
        try:
            self._ddb.transact_write_items(
                TransactItems=[
                    {"Delete": {"TableName": self.table, "Key": {"pk": {"S": target_id}},
                                "ConditionExpression": "accountId = :a",
                                "ExpressionAttributeValues": {":a": {"N": str(account_id)}}}},
                    self._bump(),
                ]
            )  # fmt: skip
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                return None  # removed meanwhile
            raise
        return current


class Deliveries(_Table):
    """What the sender reads: a webhook's URL and secret."""

    def delivery(self, webhook_id: str) -> tuple[Registration, str] | None:
        """An ACTIVE webhook with its secret in clear; None once it is gone."""
        item = self._ddb.get_item(TableName=self.table, Key={"pk": {"S": webhook_id}}).get("Item")
        if item is None or item.get("kind", {}).get("S") != WEBHOOK:
            return None
        registration = _registration(item)
        if registration.status != ACTIVE:
            return None
        plaintext = aws.client("kms").decrypt(
            CiphertextBlob=base64.b64decode(item["secretCiphertext"]["S"]),
            EncryptionContext={_CONTEXT_KEY: webhook_id},
        )["Plaintext"]
        return registration, bytes(plaintext).decode()


class Targets(_Table):
    """What the dispatcher reads and moves: the targets and their high-water marks."""

    def version(self) -> int:
        item = self._ddb.get_item(
            TableName=self.table, Key={"pk": {"S": VERSION_KEY}}, ConsistentRead=True
        ).get("Item")
        return int((item or {}).get("version", {}).get("N", "0"))

    def targets(self) -> dict[int, list[Target]]:
        """Every ACTIVE target by account, with its high-water mark (a consistent scan)."""
        out: dict[int, list[Target]] = {}
        for item in self._pages("scan", ConsistentRead=True):
            if "kind" not in item:
                continue
            registration = _registration(item)
            if registration.status == ACTIVE:
                out.setdefault(registration.account_id, []).append(registration.target())
        return out

    def advance(self, target_id: str, seq: int) -> None:
        """Raises the target's high-water mark to ``seq`` (never lowers it; a target removed
        meanwhile stays removed)."""
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": target_id}},
                UpdateExpression="SET highWater = :s",
                ConditionExpression="attribute_exists(pk) AND highWater < :s",
                ExpressionAttributeValues={":s": {"N": str(seq)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise


def webhook_table(role: type[T]) -> T:
    """This deployment's webhooks table in one of its roles (Registrations, Deliveries,
    Targets). A role holds names only: its clients are ``aws.client``'s, made once."""
    settings = get_settings()
    return role(settings.webhooks_table, settings.api_key_kms_alias)


class AccountQueues:
    """The accounts' own queues (bourse.adapters.webhook_queues), as the registry's port."""

    def create(self, name: str, principal: str) -> tuple[str, str]:
        from bourse.adapters.webhook_queues import create_account_queue

        return create_account_queue(name, principal)

    def delete(self, url: str) -> None:
        from bourse.adapters.webhook_queues import delete_account_queue

        delete_account_queue(url)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def registry() -> Registry:
    """The registrations as the API and the admin plane change them."""
    settings = get_settings()
    return Registry(
        store=webhook_table(Registrations),
        queues=AccountQueues(),
        allow_local_http=settings.webhook_allow_local_http,
        queue_prefix=settings.account_queue_prefix,
        clock=_now_ms,
    )
