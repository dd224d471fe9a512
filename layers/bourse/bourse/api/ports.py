"""What the API handlers need from the outside world, as protocols.

Handlers take these as arguments, so unit tests pass in-memory fakes and the Lambda
entrypoints pass the live adapters (``bourse.adapters.live_api``).
"""

from __future__ import annotations

from typing import Any, Protocol

from bourse.adapters.api_keys import ApiKey
from bourse.adapters.redis_book import Bbo, Book
from bourse.domain.commands import Command
from bourse.domain.events import OrderResult, Reply
from bourse.domain.symbols import SymbolSpec


class MarketView(Protocol):
    """The matching service's live view (Redis)."""

    def symbols(self) -> dict[str, SymbolSpec]: ...

    def symbol(self, name: str) -> SymbolSpec | None: ...

    def book(self, symbol: str, limit: int) -> Book | None: ...

    def bbo(self, symbol: str) -> Bbo | None: ...

    def last_price(self, symbol: str) -> int | None: ...

    def balances(self, account_id: int) -> dict[str, tuple[int, int]]: ...

    def fees(self, account_id: int) -> tuple[int, int] | None: ...

    def open_orders(self, account_id: int, symbol: str | None) -> list[OrderResult]: ...


class CommandBus(Protocol):
    """Sends a command to the sequencer and waits for its reply."""

    def execute(self, command: Command) -> Reply | None:
        """The command's ``Reply``, or None when it did not come within the timeout (the
        command may still execute: Binance's "execution status unknown")."""
        ...

    def wait(self, request_id: str) -> Reply | None:
        """The reply of a command sent earlier (by a request that timed out)."""
        ...


class Idempotency(Protocol):
    """newClientOrderId idempotency (``bourse.adapters.idempotency``)."""

    def claim(self, key: str, request_id: str) -> Any:
        """None when this request now owns ``key``; else the earlier claim, with
        ``request_id``, ``status`` and ``body`` (the latter two None until answered)."""
        ...

    def complete(self, key: str, status: int, body: str) -> None: ...


class KeyStore(Protocol):
    def get(self, api_key: str) -> ApiKey | None: ...


class Clock(Protocol):
    def __call__(self) -> int:
        """Milliseconds since the epoch."""
        ...
