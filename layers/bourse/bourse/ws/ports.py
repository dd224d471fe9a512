"""What the WebSocket handlers need from the outside world (``bourse.adapters.connections``
and the listen keys), as protocols: unit tests pass in-memory fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from bourse.adapters.connections import AccountSubscription, ConnectionState

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
    ) -> int | None: ...

    def account_subscriptions(self, connection_id: str) -> list[AccountSubscription]: ...

    def unsubscribe_account(self, connection_id: str, account_id: int) -> None: ...

    def set_session(self, connection_id: str, api_key: str, account_id: int) -> None: ...

    def clear_session(self, connection_id: str) -> None: ...
