"""The standard engine workload: seeded, reproducible, the same for every engine.

One symbol (BTCUSDT, tick 0.01, step 0.00001), ``accounts`` funded accounts, then a stream
of commands: about 70% LIMIT GTC orders priced at the mid +/- an exponential offset in
ticks (mostly passive, some crossing), about 25% cancels of orders this generator placed
and believes may still rest, about 5% MARKET orders (some by quote amount). The mid drifts
as a random walk. Commands are produced lazily so a million of them never sit in memory.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from bourse.domain.commands import (
    AddSymbol,
    CancelOrder,
    Command,
    CreateAccount,
    Deposit,
    NewOrder,
)
from bourse.domain.enums import OrderType, Side, TimeInForce
from bourse.domain.symbols import SymbolSpec

E8 = 10**8
SYMBOL = "BTCUSDT"
TICK = E8 // 100  # 0.01 USDT
STEP = E8 // 100_000  # 0.00001 BTC
START_MID_TICKS = 3_000_000  # 30,000.00 USDT

SPEC = SymbolSpec(
    symbol=SYMBOL,
    base_asset="BTC",
    quote_asset="USDT",
    tick_size=TICK,
    min_price=TICK,
    max_price=1_000_000 * E8,
    step_size=STEP,
    min_qty=STEP,
    max_qty=1_000 * E8,
    max_num_orders=1_000,
)


def setup_commands(accounts: int) -> list[Command]:
    """The market and funded accounts. Admin commands: a benchmark that goes through the
    matching service signs them (``LocalAdminSigner`` / ``KmsAdminSigner``)."""
    out: list[Command] = [AddSymbol("setup-symbol", 0, SPEC)]
    for acct in range(1, accounts + 1):
        out.append(CreateAccount(f"setup-account-{acct}", 0, acct))
        out.append(Deposit(f"setup-usdt-{acct}", 0, acct, "USDT", 1_000_000_000 * E8))
        out.append(Deposit(f"setup-btc-{acct}", 0, acct, "BTC", 100_000 * E8))
    return out


def commands(count: int, accounts: int = 1_000, seed: int = 42) -> Iterator[Command]:
    """``count`` trading commands (after ``setup_commands``), deterministic for a seed."""
    rng = random.Random(seed)
    rand = rng.random
    randrange = rng.randrange
    expovariate = rng.expovariate
    mid = START_MID_TICKS
    next_order_id = 1  # mirrors the engine's per-symbol counter: every order here is valid
    placed: list[tuple[int, int]] = []  # (order id, account) of GTC orders that may rest
    buy, sell = Side.BUY, Side.SELL
    limit, market, gtc = OrderType.LIMIT, OrderType.MARKET, TimeInForce.GTC
    for i in range(count):
        ts = 1_700_000_000_000 + i
        if rand() < 0.02:
            mid += 1 if rand() < 0.5 else -1
        r = rand()
        if r < 0.25 and placed:
            j = randrange(len(placed))
            order_id, acct = placed[j]
            placed[j] = placed[-1]
            placed.pop()
            yield CancelOrder(f"q{i}", ts, acct, SYMBOL, order_id)
            continue
        acct = randrange(1, accounts + 1)
        side = buy if rand() < 0.5 else sell
        if r < 0.95:
            offset = int(expovariate(1 / 20))
            if rand() < 0.15:
                offset = -offset - 1  # marketable
            price = mid - offset if side is buy else mid + offset
            qty = randrange(1, 200) * 100 * STEP
            yield NewOrder(f"q{i}", ts, acct, SYMBOL, side, limit, f"c{i}", qty, None,
                           price * TICK, None, gtc)  # fmt: skip
            placed.append((next_order_id, acct))
        elif rand() < 0.8:
            qty = randrange(1, 300) * 100 * STEP
            yield NewOrder(f"q{i}", ts, acct, SYMBOL, side, market, f"c{i}", qty)
        else:
            quote = randrange(100, 20_000) * E8
            yield NewOrder(f"q{i}", ts, acct, SYMBOL, side, market, f"c{i}", None, quote)
        next_order_id += 1
