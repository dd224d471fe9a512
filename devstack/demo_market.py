"""python -m devstack.demo_market: a small seeded market maker and taker for the local stack.

They trade through the public REST API like any client (signed requests, their own API keys),
so the trading page has two-sided books, a trade every second or so and moving candles from
the first seconds of `make run`. `BOURSE_DEMO_MARKET=0` leaves it out of `run`.

Each market's mid price follows a random walk from ``BOURSE_DEMO_MARKET_SEED`` (one
``random.Random``; the same seed gives the same walk), in whole ticks: no float touches a
price or an amount. Every ``BOURSE_DEMO_MARKET_INTERVAL_MS``:

* the maker keeps a ladder of LEVELS bids and LEVELS asks on a fixed price grid around the mid
  (a grid, so a small move of the mid changes only the edge levels: a few orders per tick, not
  a whole new ladder), cancelling what left the ladder and placing what is missing;
* the taker sends a MARKET order of a random side and size, which trades with the ladder.

Its two accounts are opened, keyed and funded through the admin API, as devstack/seed.py does
for the demo account: created once, a new API key at every start (moto keeps keys in memory),
and a deposit whenever their balances are empty. On SIGTERM the maker cancels its quotes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from urllib.parse import urlencode

import requests

from bourse.admin.client import AdminClient, AdminError
from bourse.domain.amounts import SCALE, format_units, parse_units
from bourse.settings import Settings, get_settings
from devstack.console import DEMO_MARKET_AGENT
from devstack.seed import ensure_account

log = logging.getLogger("demo_market")

MAKER_ACCOUNT_ID = 900_001
TAKER_ACCOUNT_ID = 900_002
# Enough for days of random-side trading at these sizes.
FUNDS: dict[str, str] = {"BTC": "1000", "ETH": "20000", "USDT": "100000000"}
# Where a market that has never traded starts; one that has starts from its last price.
START_PRICES: dict[str, str] = {"BTCUSDT": "65000", "ETHUSDT": "3200", "ETHBTC": "0.049"}
LEVELS = 8
GRID_BPS = 5  # ladder spacing: 0.05 % of the start price, in whole ticks
READY_TIMEOUT_S = 180.0
REQUEST_TIMEOUT_S = 30.0  # a busy development machine answers slowly


class ApiError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status


class Client:
    """Binance's signing, by hand: HMAC-SHA256 over the urlencoded parameters (query string for
    GET/DELETE, form body for POST). Six lines; a Binance SDK would bring its own HTTP stack
    and start-up pings for no gain here."""

    def __init__(self, base_url: str, api_key: str = "", secret: str = "") -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.secret = secret
        self.session = requests.Session()
        # make run's console leaves this quoting traffic to gateway.log (devstack/console.py)
        self.session.headers["User-Agent"] = f"{DEMO_MARKET_AGENT}/1"

    def public(self, path: str, **params: Any) -> Any:
        response = self.session.get(self.base_url + path, params=params, timeout=REQUEST_TIMEOUT_S)
        return _answer(response)

    def signed(self, method: str, path: str, **params: Any) -> Any:
        # Binance's longest window: on a busy development machine a request can take seconds,
        # and a bot refused for a stale timestamp would only send the order again.
        params["recvWindow"] = 60_000
        params["timestamp"] = time.time_ns() // 1_000_000
        payload = urlencode(params)
        signature = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        payload = f"{payload}&signature={signature}"
        headers = {"X-MBX-APIKEY": self.api_key}
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = self.session.post(
                self.base_url + path, data=payload, headers=headers, timeout=REQUEST_TIMEOUT_S
            )
        else:
            url = f"{self.base_url}{path}?{payload}"
            response = self.session.request(method, url, headers=headers, timeout=REQUEST_TIMEOUT_S)
        return _answer(response)


def _answer(response: requests.Response) -> Any:
    if response.status_code != 200:
        raise ApiError(response.status_code, response.text)
    return response.json()


@dataclass
class Market:
    symbol: str
    base: str
    quote: str
    tick: int  # units of 1e-8
    step: int
    min_notional: int
    mid: int
    grid: int  # ladder spacing, a multiple of tick
    # (side, price) -> orderId of the maker's resting orders, refreshed each tick
    quotes: dict[tuple[str, int], int] = field(default_factory=dict)


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def _qty_for(notional: int, price: int, step: int) -> int:
    """Base units (a multiple of step) worth at least ``notional`` quote units at ``price``."""
    return _round_up(-(-notional * SCALE // price), step)


class DemoMarket:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.demo_market_seed)
        self.interval_s = settings.demo_market_interval_ms / 1000
        self.public = Client(settings.gateway_url)
        self.maker = Client(settings.gateway_url)
        self.taker = Client(settings.gateway_url)
        self.markets: list[Market] = []
        self.stopping = False

    # -- start-up

    def wait_for_exchange(self) -> dict[str, Any]:
        """exchangeInfo once the gateway answers and the markets are listed (`run` starts the
        processes together and seeds the markets before)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.stopping:
            try:
                info: dict[str, Any] = self.public.public("/api/v3/exchangeInfo")
                if info["symbols"]:
                    return info
            except (requests.RequestException, ApiError):
                pass
            if time.monotonic() > deadline:
                raise SystemExit("demo market: the exchange did not list any market; giving up")
            time.sleep(1)
        raise SystemExit(0)

    def _accounts(self) -> tuple[tuple[Client, int], ...]:
        return ((self.maker, MAKER_ACCOUNT_ID), (self.taker, TAKER_ACCOUNT_ID))

    def create_keys(self) -> None:
        admin = AdminClient.local(self.settings)
        for client, account_id in self._accounts():
            ensure_account(admin, account_id)
            key = admin.create_key(account_id, permissions=("READ", "TRADE"), label="demo market")
            client.api_key, client.secret = key["apiKey"], key["secret"]

    def fund(self) -> None:
        """A deposit for each account that holds nothing yet, then wait until it shows."""
        empty = [account for client, account in self._accounts() if not self._holdings(client)]
        if not empty:
            return
        admin = AdminClient.local(self.settings)
        for account_id in empty:
            for asset, amount in FUNDS.items():
                tx_id = f"demo-market-{account_id}-{asset}-{uuid.uuid4().hex[:12]}"
                admin.deposit(account_id, asset, amount, tx_id)
        deadline = time.monotonic() + 60
        while not self._holdings(self.maker) or not self._holdings(self.taker):
            if time.monotonic() > deadline:
                raise SystemExit("demo market: its deposits did not show in its balances")
            time.sleep(0.2)
        log.info("funded accounts %s with %s", empty, FUNDS)

    def _holdings(self, client: Client) -> set[str]:
        account = client.signed("GET", "/api/v3/account", omitZeroBalances="true")
        return {b["asset"] for b in account["balances"]} & set(FUNDS)

    def load_markets(self, info: dict[str, Any]) -> None:
        for s in info["symbols"]:
            filters = {f["filterType"]: f for f in s["filters"]}
            tick = parse_units(filters["PRICE_FILTER"]["tickSize"])
            step = parse_units(filters["LOT_SIZE"]["stepSize"])
            min_notional = parse_units(filters.get("NOTIONAL", {}).get("minNotional", "0"))
            last = self.public.public("/api/v3/ticker/price", symbol=s["symbol"])["price"]
            start = parse_units(last) or parse_units(START_PRICES.get(s["symbol"], "0"))
            if not start:
                log.info("%s: no last price and no start price; not quoting it", s["symbol"])
                continue
            grid = _round_up(max(start * GRID_BPS // 10_000, tick), tick)
            self.markets.append(
                Market(s["symbol"], s["baseAsset"], s["quoteAsset"], tick, step,
                       max(min_notional, tick), start // tick * tick, grid)
            )  # fmt: skip
        log.info(
            "quoting %s",
            ", ".join(f"{m.symbol} from {format_units(m.mid)}" for m in self.markets),
        )

    # -- every tick

    def walk(self, market: Market) -> None:
        """One step of the mid's random walk, in ticks (at most a third of the grid)."""
        reach = max(1, market.grid // market.tick // 3)
        market.mid += self.rng.randint(-reach, reach) * market.tick
        market.mid = max(market.mid, market.grid * (LEVELS + 2))

    def ladder(self, market: Market) -> dict[tuple[str, int], int]:
        """(side, price) -> quantity of the ladder around the current mid."""
        best_bid = (market.mid - 1) // market.grid * market.grid
        best_ask = market.mid // market.grid * market.grid + market.grid
        ladder: dict[tuple[str, int], int] = {}
        for level in range(LEVELS):
            for side, price in (
                ("BUY", best_bid - level * market.grid),
                ("SELL", best_ask + level * market.grid),
            ):
                # Deeper levels are bigger: 20..60 times the minimum notional, times the depth.
                notional = market.min_notional * self.rng.randint(20, 60) * (level + 1)
                ladder[(side, price)] = _qty_for(notional, price, market.step)
        return ladder

    def requote(self, market: Market) -> None:
        resting = self.maker.signed("GET", "/api/v3/openOrders", symbol=market.symbol)
        market.quotes = {(o["side"], parse_units(o["price"])): o["orderId"] for o in resting}
        wanted = self.ladder(market)
        for key, order_id in list(market.quotes.items()):
            if key not in wanted:
                self._quietly(self.maker, "DELETE", "/api/v3/order", symbol=market.symbol,
                              orderId=order_id)  # fmt: skip
                del market.quotes[key]
        for (side, price), qty in wanted.items():
            if (side, price) in market.quotes:
                continue
            order = self._quietly(
                self.maker, "POST", "/api/v3/order", symbol=market.symbol, side=side,
                type="LIMIT", timeInForce="GTC", price=format_units(price),
                quantity=format_units(qty), newOrderRespType="ACK",
            )  # fmt: skip
            if order is not None:
                market.quotes[(side, price)] = order["orderId"]

    def take(self, market: Market) -> None:
        if self.rng.random() < 0.3:  # not every tick: trades come irregularly
            return
        side = self.rng.choice(("BUY", "SELL"))
        notional = market.min_notional * self.rng.randint(3, 40)
        qty = _qty_for(notional, market.mid, market.step)
        self._quietly(
            self.taker, "POST", "/api/v3/order", symbol=market.symbol, side=side, type="MARKET",
            quantity=format_units(qty), newOrderRespType="ACK",
        )  # fmt: skip

    def _quietly(self, client: Client, method: str, path: str, **params: Any) -> Any:
        """A refused order (a rate limit, a user's order in the way) is logged and skipped: the
        next tick quotes again."""
        try:
            return client.signed(method, path, **params)
        except ApiError as exc:
            log.info("%s %s %s: %s", method, path, params.get("symbol"), exc)
            return None

    def start(self) -> None:
        """Keys, funds and markets, tried again until the exchange answers them all (its
        functions' first requests can be slow, or fail while it starts)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.stopping:
            info = self.wait_for_exchange()
            try:
                self.create_keys()
                self.fund()
                self.load_markets(info)
                return
            except (requests.RequestException, ApiError, AdminError) as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("not ready yet (%s); trying again", exc)
                self.markets.clear()
                time.sleep(1)

    def run(self) -> None:
        self.start()
        next_tick = time.monotonic()
        while not self.stopping:
            for market in self.markets:
                if self.stopping:
                    break
                try:
                    self.walk(market)
                    self.requote(market)
                    self.take(market)
                except (requests.RequestException, ApiError) as exc:
                    log.warning("%s: %s; trying again next tick", market.symbol, exc)
            next_tick += self.interval_s
            time.sleep(max(0.0, next_tick - time.monotonic()))
            next_tick = max(next_tick, time.monotonic())
        self.cancel_quotes()

    def cancel_quotes(self) -> None:
        for market in self.markets:
            try:
                self.maker.signed("DELETE", "/api/v3/openOrders", symbol=market.symbol)
            except (requests.RequestException, ApiError) as exc:
                log.info("%s: quotes not cancelled: %s", market.symbol, exc)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )  # fmt: skip
    market = DemoMarket(get_settings())

    def stop(signum: int, frame: FrameType | None) -> None:
        market.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    market.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
