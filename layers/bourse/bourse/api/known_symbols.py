"""A command bus that sends only commands on symbols the live view lists.

The engine would reject an unknown symbol too (-1121), but only once the command is in the log:
every such request would still cost a write to ``bourse.commands``, a slot in the one sequence
and a replay step for ever after. Checked here, a request naming a symbol that does not exist
is answered -1121 and leaves nothing behind.

A live view that lists no market at all is not an exchange without markets but a Redis that
lost its data (restarted without it, or reset) and that the matching service has not written
again yet: its silence proves nothing, so the command goes to the engine, which knows
(`make chaos` caught -1121 "Invalid symbol." for listed markets while Redis was empty).
"""

from __future__ import annotations

from dataclasses import dataclass

from bourse.api.ports import CommandBus, MarketView
from bourse.domain import errors
from bourse.domain.commands import CancelReplace, Command
from bourse.domain.events import Reply


def symbols_of(command: Command) -> tuple[str, ...]:
    """The symbols a trading command acts on (a cancel-replace: both halves')."""
    if isinstance(command, CancelReplace):
        return (command.cancel.symbol, command.new_order.symbol)
    symbol = getattr(command, "symbol", None)
    return (symbol,) if isinstance(symbol, str) else ()


@dataclass(frozen=True)
class KnownSymbolsBus:
    bus: CommandBus
    view: MarketView

    def execute(self, command: Command) -> Reply | None:
        for symbol in symbols_of(command):
            if not self.view.is_listed(symbol) and self.view.symbols():
                raise errors.INVALID_SYMBOL_ERROR
        return self.bus.execute(command)

    def wait(self, request_id: str) -> Reply | None:
        return self.bus.wait(request_id)
