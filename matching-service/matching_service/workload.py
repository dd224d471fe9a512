"""Deterministic random command streams: the load for `make bench-service` and the crash tests.

The same seed always gives the same commands, so a run through Kafka can be compared with an
uninterrupted in-process run. The stream lists the default markets, creates and funds a few
accounts (admin commands: sign them with ``admin_auth.encode_record`` before they go through
the real service) and
then trades around a drifting mid price so that orders cross often: limit orders (GTC, IOC,
FOK), market orders by quantity and by quote amount, cancels of recent orders (some of them
already gone: rejects are part of the load), cancel-replace, cancel-all and stops.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from bourse.domain.commands import (
    AddSymbol,
    AmendOrder,
    CancelAll,
    CancelOrder,
    CancelReplace,
    Command,
    CreateAccount,
    Deposit,
    NewOrder,
)
from bourse.domain.enums import CancelReplaceMode, OrderType, Side, TimeInForce
from bourse.domain.markets import DEFAULT_MARKETS
from bourse.domain.symbols import SymbolSpec

E8 = 10**8
# (mid price, smallest and largest quantity) per default market, in 1e-8 units.
_MIDS: dict[str, tuple[int, int, int]] = {
    "BTCUSDT": (30_000 * E8, E8 // 1000, E8 // 10),
    "ETHUSDT": (2_000 * E8, E8 // 100, E8),
    "ETHBTC": (6 * E8 // 100, E8 // 100, E8),
}
_FUNDS = {"BTC": 1_000 * E8, "ETH": 10_000 * E8, "USDT": 100_000_000 * E8}
START_TS = 1_700_000_000_000


def _round(value: int, step: int) -> int:
    return max(step, value - value % step)


def commands(count: int, *, seed: int = 1, accounts: int = 20) -> Iterator[Command]:
    """``count`` commands in total, set-up included."""
    rng = random.Random(seed)
    specs: list[SymbolSpec] = list(DEFAULT_MARKETS)
    n = 0
    ts = START_TS

    def rid() -> str:
        return f"w{seed}-{n}"

    for spec in specs:
        if n >= count:
            return
        yield AddSymbol(rid(), ts, spec)
        n += 1
    for account in range(1, accounts + 1):
        if n >= count:
            return
        yield CreateAccount(rid(), ts, account)
        n += 1
        for asset, amount in _FUNDS.items():
            if n >= count:
                return
            yield Deposit(rid(), ts, account, asset, amount)
            n += 1
    mids = {spec.symbol: _MIDS[spec.symbol][0] for spec in specs}
    recent: list[tuple[int, str, str]] = []  # (account, symbol, client order id)
    while n < count:
        ts += rng.randint(0, 3)
        spec = rng.choice(specs)
        sym = spec.symbol
        _, qmin, qmax = _MIDS[sym]
        mid = mids[sym]
        # A slow random walk keeps prices inside PERCENT_PRICE and the book two-sided.
        mids[sym] = max(spec.tick_size * 100, mid + rng.randint(-2, 2) * spec.tick_size)
        account = rng.randint(1, accounts)
        side = rng.choice((Side.BUY, Side.SELL))
        qty = _round(rng.randint(qmin, qmax), spec.step_size)
        offset = rng.randint(-20, 20) * spec.tick_size
        price = _round(mid + (offset if side is Side.SELL else -offset), spec.tick_size)
        r = rng.random()
        cid = f"c{n}"
        cmd: Command
        if r < 0.55:
            tif = rng.choice((TimeInForce.GTC, TimeInForce.GTC, TimeInForce.GTC,
                              TimeInForce.IOC, TimeInForce.FOK))  # fmt: skip
            cmd = NewOrder(rid(), ts, account, sym, side, OrderType.LIMIT, cid, quantity=qty,
                           price=price, time_in_force=tif)  # fmt: skip
            recent.append((account, sym, cid))
        elif r < 0.65:
            if rng.random() < 0.5:
                cmd = NewOrder(rid(), ts, account, sym, side, OrderType.MARKET, cid, quantity=qty)
            else:
                quote = _round(qty * mid // E8, spec.tick_size)
                cmd = NewOrder(rid(), ts, account, sym, side, OrderType.MARKET, cid,
                               quote_order_qty=quote)  # fmt: skip
        elif r < 0.88 and recent:
            acc, csym, ocid = recent.pop(rng.randrange(len(recent)))
            cmd = CancelOrder(rid(), ts, acc, csym, orig_client_order_id=ocid,
                              cancel_client_order_id=f"x{n}")  # fmt: skip
        elif r < 0.93 and recent:
            acc, csym, ocid = recent.pop(rng.randrange(len(recent)))
            cspec = next(s for s in specs if s.symbol == csym)
            new = NewOrder(rid(), ts, acc, csym, side, OrderType.LIMIT, cid,
                           quantity=_round(rng.randint(*_MIDS[csym][1:]), cspec.step_size),
                           price=_round(mids[csym] + offset, cspec.tick_size),
                           time_in_force=TimeInForce.GTC)  # fmt: skip
            cancel = CancelOrder(rid(), ts, acc, csym, orig_client_order_id=ocid)
            mode = rng.choice(tuple(CancelReplaceMode))
            cmd = CancelReplace(rid(), ts, mode, cancel, new)
            recent.append((acc, csym, cid))
        elif r < 0.95:
            stop_type = rng.choice((OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT))
            below = (stop_type is OrderType.STOP_LOSS_LIMIT) == (side is Side.SELL)
            distance = rng.randint(5, 40) * spec.tick_size
            stop = _round(mid - distance if below else mid + distance, spec.tick_size)
            cmd = NewOrder(rid(), ts, account, sym, side, stop_type, cid, quantity=qty,
                           price=stop, stop_price=stop, time_in_force=TimeInForce.GTC)  # fmt: skip
            recent.append((account, sym, cid))
        elif r < 0.955:
            cmd = CancelAll(rid(), ts, account, sym)
        elif r < 0.965 and recent:
            # Amend keep priority to about half a typical size: often a reduction, sometimes
            # an increase (-2038) or an order already gone.
            acc, csym, ocid = recent[rng.randrange(len(recent))]
            cspec = next(s for s in specs if s.symbol == csym)
            half = _round(rng.randint(*_MIDS[csym][1:]) // 2, cspec.step_size) or cspec.step_size
            cmd = AmendOrder(rid(), ts, acc, csym, half, f"a{n}", orig_client_order_id=ocid)
            recent.remove((acc, csym, ocid))
            recent.append((acc, csym, f"a{n}"))
        else:
            tif = TimeInForce.GTC
            cmd = NewOrder(rid(), ts, account, sym, side, OrderType.LIMIT, cid, quantity=qty,
                           price=price, time_in_force=tif)  # fmt: skip
            recent.append((account, sym, cid))
        if len(recent) > 2_000:  # keep cancels aimed at orders that may still rest
            del recent[:1_000]
        yield cmd
        n += 1
