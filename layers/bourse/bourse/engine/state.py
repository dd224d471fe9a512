"""What the engine holds: its durable state and one command's scratch.

A class of its own so that the modules that work on the state (the command handlers,
``snapshot``, ``invariants``) need only this, not the ``Engine`` built on it: the engine
imports them, none of them imports the engine.
"""

from __future__ import annotations

from typing import Any

from bourse.domain import errors
from bourse.domain.events import Fill, ReplyPart
from bourse.engine.balances import Balances
from bourse.engine.order_lists import OrderLists
from bourse.engine.orders import Order
from bourse.engine.registry import Registry
from bourse.engine.symbol_state import SymbolState

# What a command handler returns for the command's Reply: code, message, parts.
Result = tuple[int, str, tuple[ReplyPart, ...]]


class EngineState:
    def __init__(self) -> None:
        self._seq = 0
        self._symbols: dict[str, SymbolState] = {}
        self._bal = Balances()
        self._reg = Registry()
        self._lists = OrderLists()
        # Per-command scratch.
        self._ts = 0
        self._events: list[Any] = []
        self._touched_bal: dict[tuple[int, str], tuple[list[int], int, int]] = {}
        self._touched_bids: dict[int, int] = {}
        self._touched_asks: dict[int, int] = {}
        self._cmd_sym: SymbolState | None = None
        self._reply_order: Order | None = None  # the new order while its stops cascade
        self._reply_fills: list[Fill] = []
        self._detail = ""  # an admin command's result, for its Reply

    def _symbol(self, name: str) -> SymbolState:
        sym = self._symbols.get(name)
        if sym is None:
            raise errors.INVALID_SYMBOL_ERROR
        return sym

    def _account(self, account_id: int) -> None:
        if account_id not in self._reg.accounts:
            raise errors.UNKNOWN_ACCOUNT_ERROR
