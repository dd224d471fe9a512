"""Builders and checks shared by the engine's example tests (test_engine_*.py).

``Bench`` wraps an engine: every command goes through ``run``, which checks the contract's
invariants (docs/engine.md) and the gap-free ``seq`` after each one.
"""

from __future__ import annotations

from typing import Any

import pytest

from bourse.domain.commands import (
    AddSymbol,
    CancelAll,
    CancelOrder,
    CreateAccount,
    Deposit,
    NewOrder,
)
from bourse.domain.enums import OrderType, Side, TimeInForce
from bourse.domain.events import ExecutionReport, OrderResult, Reply, Trade
from bourse.domain.symbols import SymbolSpec
from bourse.engine import Engine
from bourse.engine.invariants import problems

pytestmark = pytest.mark.unit

E8 = 10**8
SYMBOL = "BTCUSDT"
LOT = E8 // 100  # 0.01 BTC


def spec(**overrides: Any) -> SymbolSpec:
    fields: dict[str, Any] = dict(
        symbol=SYMBOL,
        base_asset="BTC",
        quote_asset="USDT",
        tick_size=E8,  # 1 USDT
        min_price=E8,
        max_price=1_000_000 * E8,
        step_size=LOT,
        min_qty=LOT,
        max_qty=1_000 * E8,
    )
    fields.update(overrides)
    return SymbolSpec(**fields)


class Bench:
    """An engine with a symbol and funded accounts, checked after every command."""

    def __init__(self, accounts: int = 4, usdt: int = 1_000_000, btc: int = 100, **spec_kw: Any):
        self.engine = Engine()
        self.ts = 0
        self.seq = 0
        self.oid = 0
        self.admin_n = 0
        self.run(AddSymbol("add", 0, spec(**spec_kw)))
        for acct in range(1, accounts + 1):
            self.run(CreateAccount(f"acct-{acct}", 0, acct))
            self.run(Deposit(f"dep-{acct}-usdt", 0, acct, "USDT", usdt * E8))
            self.run(Deposit(f"dep-{acct}-btc", 0, acct, "BTC", btc * E8))

    def admin(self, cmd_type: type, *args: Any, **kw: Any) -> list[Any]:
        """Run an admin command with a fresh request id (admin request ids are single-use)."""
        self.admin_n += 1
        self.ts += 1
        return self.run(cmd_type(f"adm{self.admin_n}", self.ts, *args, **kw))

    def run(self, cmd: Any) -> list[Any]:
        events = self.engine.process(cmd)
        for event in events:
            self.seq += 1
            assert event.seq == self.seq
        assert isinstance(events[-1], Reply)
        assert not problems(self.engine), problems(self.engine)
        return events

    def order(
        self,
        acct: int,
        side: str,
        qty: int | None = None,
        price: int | None = None,
        *,
        type: OrderType = OrderType.LIMIT,
        tif: TimeInForce | None = None,
        **kw: Any,
    ) -> list[Any]:
        """Place an order; quantities in lots (0.01 BTC), prices in whole USDT."""
        self.ts += 1
        self.oid += 1
        if type in (OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT):
            tif = tif or TimeInForce.GTC
        return self.run(
            NewOrder(
                f"r{self.ts}",
                self.ts,
                acct,
                SYMBOL,
                Side(side),
                type,
                kw.pop("cid", f"c{self.oid}"),
                quantity=None if qty is None else qty * LOT,
                price=None if price is None else price * E8,
                time_in_force=tif,
                **kw,
            )
        )

    def cancel(self, acct: int, order_id: int | None = None, **kw: Any) -> list[Any]:
        self.ts += 1
        return self.run(CancelOrder(f"x{self.ts}", self.ts, acct, SYMBOL, order_id, **kw))

    def cancel_all(self, acct: int) -> list[Any]:
        self.ts += 1
        return self.run(CancelAll(f"x{self.ts}", self.ts, acct, SYMBOL))

    def free(self, acct: int, asset: str) -> int:
        return self.engine.balances().get(acct, {}).get(asset, (0, 0))[0]

    def locked(self, acct: int, asset: str) -> int:
        return self.engine.balances().get(acct, {}).get(asset, (0, 0))[1]


def of(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def reports(events: list[Any]) -> list[tuple[int, str, str]]:
    """(order id, exec type, status) of each execution report, in order."""
    return [(e.order.order_id, e.exec_type, e.status) for e in of(events, ExecutionReport)]


def trades(events: list[Any]) -> list[tuple[int, int]]:
    """(price in USDT, qty in lots) of each trade."""
    return [(t.price // E8, t.qty // LOT) for t in of(events, Trade)]


def reply(events: list[Any]) -> Reply:
    last = events[-1]
    assert isinstance(last, Reply)
    return last


def first_result(events: list[Any]) -> OrderResult:
    """The order result of the command's reply (its first part)."""
    result = reply(events).parts[0].result
    assert result is not None
    return result


def test_bench_starts_sound() -> None:
    bench = Bench()
    assert bench.engine.balances()[1] == {"BTC": (100 * E8, 0), "USDT": (1_000_000 * E8, 0)}
    assert bench.engine.depth(SYMBOL, 10) == (0, (), ())
