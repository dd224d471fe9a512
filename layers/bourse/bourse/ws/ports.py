"""What the WebSocket handlers need from the outside world (``bourse.adapters.connections``
and the listen keys), as protocols: unit tests pass in-memory fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from bourse.adapters.connections import AccountSubscription, ConnectionState
from bourse.streams.positions import Position

# listen key -> its account, or None when it does not exist (or expired)
ListenKeyLookup = Callable[[str], int | None]


class Connections(Protocol):
    def put_connection(
        self,
        connection_id: str,
        *,
        account_id: int | None,
        combined: bool,
        expires_at: int,
        listen_key: str | None = None,
        return_rate_limits: bool = True,
        positions: bool = False,
    ) -> None: ...

    def get_connection(self, connection_id: str) -> ConnectionState | None: ...

    def delete_connection(self, connection_id: str) -> None: ...

    def subscribe(self, connection_id: str, streams: Iterable[str]) -> None: ...

    def unsubscribe(self, connection_id: str, streams: Iterable[str]) -> None: ...

    def list_subscriptions(self, connection_id: str) -> list[str]: ...

    def set_combined(self, connection_id: str, combined: bool) -> None: ...

    def subscribe_account(
        self,
        connection_id: str,
        account_id: int,
        *,
        listen_key: str | None = None,
        with_subscription_id: bool = False,
        api_key: str | None = None,
        positions: bool | None = None,
    ) -> int | None: ...

    def account_subscriptions(self, connection_id: str) -> list[AccountSubscription]: ...

    def unsubscribe_account(self, connection_id: str, account_id: int) -> None: ...

    def set_session(self, connection_id: str, api_key: str, account_id: int) -> None: ...

    def clear_session(self, connection_id: str) -> None: ...


class Resumes(Protocol):
    """Resuming connections (``bourse.adapters.stream_resumes``): whether the message log still
    holds what follows a cursor (``LogGap`` if not), marking a connection as replaying, and
    starting its replay once it is registered. ``logs``: (log, the envelope's stream name)."""

    def check(self, logs: Sequence[str], cursor: Position) -> None: ...

    def mark_replaying(self, connection_id: str, cursor: Position) -> None: ...

    def forget(self, connection_id: str) -> None: ...

    def start(
        self,
        connection_id: str,
        cursor: Position,
        logs: Sequence[tuple[str, str]],
        *,
        subscription_id: int | None = None,
        first: bytes = b"",
    ) -> None: ...
