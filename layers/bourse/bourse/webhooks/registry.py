"""Registering, listing and removing an account's webhooks and its queue: what the trader API
(bourse.api.webhooks) and the admin plane (bourse.admin.webhooks) share. The store and the
queues are ports (bourse.adapters.webhooks, bourse.adapters.webhook_queues); errors are
``BinanceError`` (-1130 with the reason, 404 for an unknown webhook or queue).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bourse.domain import errors
from bourse.domain.errors import BinanceError
from bourse.webhooks.dispatch import QUEUE, WEBHOOK
from bourse.webhooks.rules import account_queue_name, check_principal, check_url, queue_target_id

UNKNOWN_WEBHOOK = BinanceError(
    errors.INVALID_PARAMETER, "Invalid data sent for a parameter. Unknown webhook.", 404
)
NO_QUEUE = BinanceError(
    errors.INVALID_PARAMETER, "Invalid data sent for a parameter. The account has no queue.", 404
)


class Registered(Protocol):
    @property
    def target_id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def queue_url(self) -> str: ...

    def as_json(self) -> dict[str, Any]: ...


class Store(Protocol):
    """bourse.adapters.webhooks.Registrations; ``create_webhook`` raises ValueError past the
    account's limit."""

    def create_webhook(self, account_id: int, url: str, created_at_ms: int) -> tuple[
        Registered, str
    ]: ...  # fmt: skip

    def put_queue(
        self, account_id: int, queue_url: str, queue_arn: str, principal: str, created_at_ms: int
    ) -> Registered: ...

    def of_account(self, account_id: int) -> list[Any]: ...

    def delete(self, target_id: str, account_id: int) -> Registered | None: ...


class Queues(Protocol):
    def create(self, name: str, principal: str) -> tuple[str, str]: ...

    def delete(self, url: str) -> None: ...


@dataclass(frozen=True)
class Registry:
    store: Store
    queues: Queues
    allow_local_http: bool
    queue_prefix: str
    clock: Callable[[], int]

    def add_webhook(self, account_id: int, url: str) -> dict[str, Any]:
        """The new webhook with its secret (shown this once)."""
        try:
            checked = check_url(url, self.allow_local_http)
            webhook, secret = self.store.create_webhook(account_id, checked, self.clock())
        except ValueError as exc:
            raise errors.invalid_parameter(f"{exc}.") from None
        return {**webhook.as_json(), "secret": secret}

    def listing(self, account_id: int) -> dict[str, Any]:
        found = self.store.of_account(account_id)
        queue = next((r for r in found if r.kind == QUEUE), None)
        return {
            "webhooks": [r.as_json() for r in found if r.kind == WEBHOOK],
            "queue": None if queue is None else queue.as_json(),
        }

    def remove_webhook(self, account_id: int, webhook_id: str) -> dict[str, Any]:
        if not webhook_id.startswith("wh_"):
            raise UNKNOWN_WEBHOOK
        removed = self.store.delete(webhook_id, account_id)
        if removed is None or removed.kind != WEBHOOK:
            raise UNKNOWN_WEBHOOK
        return removed.as_json()

    def open_queue(self, account_id: int, principal: str) -> dict[str, Any]:
        """The account's FIFO queue, readable by ``principal`` (created unless it exists)."""
        try:
            checked = check_principal(principal)
        except ValueError as exc:
            raise errors.invalid_parameter(f"{exc}.") from None
        url, arn = self.queues.create(account_queue_name(self.queue_prefix, account_id), checked)
        return self.store.put_queue(account_id, url, arn, checked, self.clock()).as_json()

    def close_queue(self, account_id: int) -> dict[str, Any]:
        removed = self.store.delete(queue_target_id(account_id), account_id)
        if removed is None:
            raise NO_QUEUE
        self.queues.delete(removed.queue_url)
        return removed.as_json()
