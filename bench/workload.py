"""The standard engine workload: seeded, reproducible, the same for every engine.

One symbol (BTCUSDT, tick 0.01, step 0.00001), as the issue's comparison with order-book
packages uses; ``accounts`` accounts, one in ten of them funded thinly (their orders run short
of balance and some are rejected, as a real exchange's are). Then a stream of commands, about:

- 56% LIMIT GTC at the mid +/- an exponential offset in ticks (mostly passive, 10% crossing),
  3% LIMIT IOC/FOK, 4% icebergs (2-10 visible slices: fills refill them);
- 3% LIMIT orders of an account that crosses one of its own resting orders (self-trade
  prevention, every STP mode);
- 4% MARKET by quantity, 2% MARKET by quote amount (``quote_order_qty``);
- 6% stops: STOP_LOSS(_LIMIT) and TAKE_PROFIT(_LIMIT) a few ticks to a few hundred away from
  the mid (they trigger as the price moves; some are refused as "would trigger"), and trailing
  stops of 1-5 BIPS, with or without a stop price;
- 22% cancels (by client order id) of orders this generator placed and believes may rest,
  mostly recent ones, and of its stops beyond the latest ``STOPS_KEPT``: some are already
  filled or triggered, and the engine refuses them as Binance does.

The mid is a random walk of about 3 ticks (0.03 USDT) per command, roughly BTCUSDT's own
volatility per order on Binance: enough for stops to trigger and trailing stops to reverse,
and it makes resting orders left behind by the mid cross with new ones. Commands are produced
lazily so a million of them never sit in memory.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterator

from bourse.domain.commands import (
    AddSymbol,
    CancelOrder,
    Command,
    CreateAccount,
    Deposit,
    NewOrder,
)
from bourse.domain.enums import OrderType, Side, StpMode, TimeInForce
from bourse.domain.symbols import SymbolSpec

E8 = 10**8
SYMBOL = "BTCUSDT"
TICK = E8 // 100  # 0.01 USDT
STEP = E8 // 100_000  # 0.00001 BTC
START_MID_TICKS = 3_000_000  # 30,000.00 USDT
THIN_EVERY = 10  # every tenth account is funded thinly
# Untriggered stops kept at most (a third of them trailing): each trade shows every trailing
# stop its price, so this is what the stops cost per trade, and it must not grow without end.
STOPS_KEPT = 500

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
    max_num_algo_orders=50,
    max_num_iceberg_orders=50,
    # 1 BIPS at 30,000 is 300 ticks: the smallest trailing delta Binance's filter may allow.
    min_trailing_above_delta=1,
    min_trailing_below_delta=1,
)

_STOP_TYPES = (
    OrderType.STOP_LOSS_LIMIT,
    OrderType.TAKE_PROFIT_LIMIT,
    OrderType.STOP_LOSS,
    OrderType.TAKE_PROFIT,
)
_STP_MODES = (StpMode.EXPIRE_MAKER, StpMode.EXPIRE_TAKER, StpMode.EXPIRE_BOTH, StpMode.DECREMENT)


def is_thin(account: int) -> bool:
    return account % THIN_EVERY == 0


def setup_commands(accounts: int) -> list[Command]:
    """The market and funded accounts. Admin commands: a benchmark that goes through the
    matching service signs them (``LocalAdminSigner`` / ``KmsAdminSigner``)."""
    out: list[Command] = [AddSymbol("setup-symbol", 0, SPEC)]
    for acct in range(1, accounts + 1):
        # Thin: about six average orders' worth of each asset.
        usdt, btc = (20_000 * E8, E8 // 2) if is_thin(acct) else (1_000_000_000 * E8, 100_000 * E8)
        out.append(CreateAccount(f"setup-account-{acct}", 0, acct))
        out.append(Deposit(f"setup-usdt-{acct}", 0, acct, "USDT", usdt))
        out.append(Deposit(f"setup-btc-{acct}", 0, acct, "BTC", btc))
    return out


def _stop(rng: random.Random, rid: str, ts: int, acct: int, side: Side, cid: str,
          qty: int, mid: int) -> NewOrder:  # fmt: skip
    """A stop that does not trigger at once (if the last trade is near the mid)."""
    order_type = _STOP_TYPES[rng.randrange(4)]
    limit = order_type in (OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT)
    # STOP_LOSS BUY and TAKE_PROFIT SELL trigger on a rise: their stop price is above.
    rises = (order_type in (OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT)) == (side is Side.BUY)
    trailing = rng.random() < 0.35
    stop: int | None = None
    if not trailing or rng.random() < 0.5:
        distance = int(rng.expovariate(1 / 80)) + 3
        stop = (mid + distance if rises else mid - distance) * TICK
    price = None
    if limit:
        # The limit a few ticks past the stop, on the side that makes it fill when triggered.
        anchor = stop // TICK if stop is not None else mid
        slack = rng.randrange(0, 30)
        price = (anchor + slack if side is Side.BUY else anchor - slack) * TICK
    return NewOrder(rid, ts, acct, SYMBOL, side, order_type, cid, qty, None, price, stop,
                    TimeInForce.GTC if limit else None,
                    trailing_delta=rng.randint(1, 5) if trailing else None)  # fmt: skip


def commands(count: int, accounts: int = 1_000, seed: int = 42) -> Iterator[Command]:
    """``count`` trading commands (after ``setup_commands``), deterministic for a seed."""
    rng = random.Random(seed)
    rand = rng.random
    randrange = rng.randrange
    expovariate = rng.expovariate
    mid = START_MID_TICKS
    trend_left, trend_speed, trend_step = 0, 0.0, 0  # a move under way: commands, P(tick), sign
    # (client order id, account, side, price in ticks) of GTC orders that may rest.
    placed: list[tuple[str, int, Side, int]] = []
    # Stops: the latest STOPS_KEPT; older ones are cancelled (if they have not triggered).
    stops: deque[tuple[str, int]] = deque(maxlen=STOPS_KEPT)
    stale_stops: list[tuple[str, int]] = []
    near_touch: deque[tuple[str, int, Side, int]] = deque(maxlen=1)  # the latest at the touch
    buy, sell = Side.BUY, Side.SELL
    limit, market, gtc = OrderType.LIMIT, OrderType.MARKET, TimeInForce.GTC
    for i in range(count):
        ts = 1_700_000_000_000 + i
        rid, cid = f"q{i}", f"c{i}"
        if trend_left:
            trend_left -= 1
            if rand() < trend_speed:
                mid += trend_step
        elif rand() < 1 / 5_000:
            trend_left = randrange(500, 3_000)
            trend_speed = randrange(300, 900) / trend_left
            trend_step = 1 if rand() < 0.5 else -1
        elif rand() < 0.02:
            step = randrange(1, 4)
            mid += step if rand() < 0.5 else -step
        r = rand()
        if r < 0.22 and (placed or stale_stops):
            if stale_stops:
                ocid, acct = stale_stops.pop()
            else:
                # Mostly recent orders, as market makers replace their quotes.
                j = max(0, len(placed) - 1 - int(expovariate(1 / 300)))
                ocid, acct, _, _ = placed.pop(j)
            yield CancelOrder(rid, ts, acct, SYMBOL, orig_client_order_id=ocid)
            continue
        acct = randrange(1, accounts + 1)
        side = buy if rand() < 0.5 else sell
        qty = randrange(1, 200) * 100 * STEP
        if r < 0.81:
            offset = int(expovariate(1 / 30))
            if rand() < 0.1:
                offset = -offset - 1  # marketable
            price = mid - offset if side is buy else mid + offset
            tif = gtc
            if r >= 0.78:
                tif = TimeInForce.IOC if r < 0.80 else TimeInForce.FOK
            yield NewOrder(rid, ts, acct, SYMBOL, side, limit, cid, qty, None, price * TICK,
                           None, tif)  # fmt: skip
            if tif is gtc:
                placed.append((cid, acct, side, price))
                if offset == 0:
                    near_touch.append((cid, acct, side, price))
        elif r < 0.85:
            offset = int(expovariate(1 / 30))
            price = mid - offset if side is buy else mid + offset
            qty *= 5
            slice_qty = -(-qty // randrange(2, 11))  # ceil: at most 10 parts
            slice_qty += -slice_qty % STEP
            yield NewOrder(rid, ts, acct, SYMBOL, side, limit, cid, qty, None, price * TICK,
                           None, gtc, iceberg_qty=slice_qty)  # fmt: skip
            placed.append((cid, acct, side, price))
        elif r < 0.88 and near_touch:
            # The same account crosses its own order placed near the touch a little earlier
            # (at that order's price: better levels of other accounts fill first).
            _, acct, own_side, own_price = near_touch[randrange(len(near_touch))]
            side = sell if own_side is buy else buy
            mode = _STP_MODES[randrange(4)]
            qty *= 5  # large enough to reach its own order past the others' at that price
            yield NewOrder(rid, ts, acct, SYMBOL, side, limit, cid, qty, None, own_price * TICK,
                           None, gtc, stp_mode=mode)  # fmt: skip
            placed.append((cid, acct, side, own_price))
        elif r < 0.92:
            yield NewOrder(rid, ts, acct, SYMBOL, side, market, cid, qty)
        elif r < 0.94:
            quote = randrange(100, 6_000) * E8
            yield NewOrder(rid, ts, acct, SYMBOL, side, market, cid, None, quote)
        else:
            yield _stop(rng, rid, ts, acct, side, cid, qty, mid)
            if len(stops) == STOPS_KEPT:
                stale_stops.append(stops[0])
            stops.append((cid, acct))
