"""What the admin handlers need from the outside world, as protocols: the command bus (signed
admin commands, one reply each), the live view (Redis), the API key table and the record's
funding history. ``bourse.adapters.admin_bus`` wires the live ones; tests pass fakes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bourse.domain.commands import Command
from bourse.domain.events import Reply
from bourse.domain.symbols import SymbolSpec


class AdminBus(Protocol):
    def execute(self, command: Command) -> Reply | None:
        """Sign, produce, and wait for the engine's reply (None: no reply in time)."""
        ...


class AdminView(Protocol):
    """The matching service's Redis view (bourse.adapters.redis_book)."""

    def symbols(self) -> dict[str, SymbolSpec]: ...

    def symbol(self, name: str) -> SymbolSpec | None: ...

    def accounts(self) -> dict[int, str]: ...

    def account_status(self, account_id: int) -> str | None: ...

    def balances(self, account_id: int) -> dict[str, tuple[int, int]]: ...

    def fees(self, account_id: int) -> tuple[int, int] | None: ...


class KeyRecord(Protocol):
    """An API key as the key table describes it (bourse.adapters.api_keys.ApiKey)."""

    @property
    def api_key(self) -> str: ...

    @property
    def account_id(self) -> int: ...

    @property
    def permissions(self) -> tuple[str, ...]: ...

    @property
    def ip_allow_list(self) -> tuple[str, ...]: ...

    @property
    def label(self) -> str: ...

    @property
    def key_type(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def created_at_ms(self) -> int: ...


class KeyAdmin(Protocol):
    """The API key table (bourse.adapters.api_keys); ``create`` raises ValueError for a bad
    type, permission, allow-list entry or public key."""

    def create(
        self,
        account_id: int,
        key_type: str,
        permissions: tuple[str, ...],
        ip_allow_list: tuple[str, ...],
        label: str,
        public_key_pem: str | None,
        created_at_ms: int,
    ) -> tuple[KeyRecord, str | None]: ...

    def list(self, account_id: int) -> Sequence[KeyRecord]: ...

    def describe(self, api_key: str) -> KeyRecord | None: ...

    def revoke(self, api_key: str) -> KeyRecord | None: ...

    def close_sessions(self, api_key: str, account_id: int) -> int: ...


class FundingHistory(Protocol):
    def __call__(self, account_id: int | None, limit: int) -> list[dict[str, Any]]:
        """Newest first, each ``{fundingId, kind, status, accountId, asset, amount, txId,
        updatedAt}`` (bourse.adapters.record_reads.funding_history)."""
        ...


def _request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class AdminDeps:
    bus: AdminBus
    view: AdminView
    keys: KeyAdmin
    funding: FundingHistory
    clock: Callable[[], int]
    new_request_id: Callable[[], str] = field(default=_request_id)
