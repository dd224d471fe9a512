"""The drill's clients: a seeded workload of limit and market orders and cancels over 2-3
symbols, half the clients over REST, half over the WebSocket API, every answer recorded.

Every order carries a newClientOrderId of its own (never reused), so the record can be asked
about each request. No request is retried: an unknown outcome is exactly what the checks
resolve afterwards.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import requests
from websockets.sync.client import ClientConnection, connect

from tests.integration.api_support import Client, Trader
from tests.integration.ws_support import signed_params

# symbol -> (mid price, tick decimals, quantity step, smallest and largest steps per order)
MARKETS: dict[str, tuple[float, int, float, int, int]] = {
    "BTCUSDT": (50_000.0, 2, 0.00001, 20, 400),
    "ETHUSDT": (3_000.0, 2, 0.0001, 20, 500),
    "ETHBTC": (0.06, 5, 0.001, 5, 200),
}
FUNDS = {"BTC": "100", "ETH": "2000", "USDT": "10000000"}
WS_TIMEOUT = 30.0
OPEN = ("NEW", "PARTIALLY_FILLED")


@dataclass
class Answer:
    kind: str  # "place" or "cancel"
    transport: str  # "rest" or "ws"
    account_id: int
    symbol: str
    client_order_id: str  # the order's (for a cancel: origClientOrderId)
    status: int | None  # HTTP status (REST) or the message's status (WS); None: no answer
    body: dict[str, Any] | None  # the order, or {"code", "msg"}; None: no answer
    failure: str = ""  # the transport error when there was no answer
    sent_at: float = 0.0  # time.time() when sent, answered_at when the answer came
    answered_at: float = 0.0

    @property
    def code(self) -> int | None:
        return int(self.body["code"]) if self.body and "code" in self.body else None


@dataclass
class Counters:
    """Shared by the clients and the fault thread: when to stop."""

    target_orders: int
    target_faults: int
    orders: int = 0
    faults: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_order(self) -> bool:
        with self.lock:
            if self.orders >= self.target_orders and self.faults >= self.target_faults:
                return False
            self.orders += 1
            return True

    def traffic_done(self) -> bool:
        with self.lock:
            return self.orders >= self.target_orders and self.faults >= self.target_faults


def order_params(rng: random.Random, symbol: str) -> dict[str, Any]:
    mid, decimals, step, low, high = MARKETS[symbol]
    side = rng.choice(("BUY", "SELL"))
    quantity = f"{rng.randint(low, high) * step:.8f}"
    if rng.random() < 0.12:
        return {"symbol": symbol, "side": side, "type": "MARKET", "quantity": quantity}
    # around the mid, so that about half the orders cross and trade
    price = f"{mid * (1 + rng.gauss(0, 0.001)):.{decimals}f}"
    return {"symbol": symbol, "side": side, "type": "LIMIT", "timeInForce": "GTC",
            "quantity": quantity, "price": price}  # fmt: skip


class Transport(Protocol):
    """How a client reaches the exchange: REST or the WebSocket API."""

    name: str

    def call(self, method: str, params: dict[str, Any]) -> tuple[int | None, Any, str]: ...

    def close(self) -> None: ...


class RestTransport:
    name = "rest"
    PATHS = {"order.place": ("POST", "/api/v3/order"), "order.cancel": ("DELETE", "/api/v3/order"),
             "order.status": ("GET", "/api/v3/order"),
             "account.status": ("GET", "/api/v3/account")}  # fmt: skip

    def __init__(self, base_url: str, trader: Trader) -> None:
        self.client = Client(base_url, trader)

    def call(self, method: str, params: dict[str, Any]) -> tuple[int | None, Any, str]:
        verb, path = self.PATHS[method]
        try:
            response = self.client.signed(verb, path, {**params, "recvWindow": 60000})
        except requests.RequestException as exc:
            return None, None, type(exc).__name__
        try:
            return response.status_code, response.json(), ""
        except ValueError:
            # not JSON: a gateway's own 5xx page; nothing says whether the order was placed
            return response.status_code, None, f"HTTP {response.status_code} not JSON"

    def close(self) -> None:
        """Nothing held between requests."""


class WsTransport:
    """One connection, one request at a time; any failure drops the connection, so that a
    late answer can never be taken for the next request's."""

    name = "ws"

    def __init__(self, base_url: str, trader: Trader) -> None:
        self.url = base_url.replace("http://", "ws://") + "/ws-api/v3"
        self.trader = trader
        self.conn: ClientConnection | None = None

    def call(self, method: str, params: dict[str, Any]) -> tuple[int | None, Any, str]:
        request_id = uuid.uuid4().hex[:16]
        try:
            if self.conn is None:
                self.conn = connect(self.url, compression=None, proxy=None, open_timeout=30)
            message = {"id": request_id, "method": method,
                       "params": signed_params(self.trader, params)}  # fmt: skip
            self.conn.send(json.dumps(message))
            answer = json.loads(self.conn.recv(timeout=WS_TIMEOUT))
        except Exception as exc:  # connection refused, closed, timed out: no answer
            self.close()
            return None, None, type(exc).__name__
        if isinstance(answer, dict) and "message" in answer and "id" not in answer:
            # API Gateway's own frame (the function failed or timed out): no answer
            self.close()
            return None, None, f"gateway: {answer['message']}"
        if not isinstance(answer, dict) or answer.get("id") != request_id:
            self.close()
            return None, None, f"unexpected message {str(answer)[:80]}"
        status = int(answer.get("status", 0))
        return status, answer.get("result", answer.get("error")), ""

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):  # already broken
                self.conn.close()
            self.conn = None


@dataclass
class ClientRun:
    """One client: one account, one transport, its own seeded random stream."""

    trader: Trader
    transport: Transport
    rng: random.Random
    answers: list[Answer] = field(default_factory=list)
    open_orders: list[tuple[str, str]] = field(default_factory=list)  # (symbol, client id)

    @property
    def account_id(self) -> int:
        return self.trader.account_id

    def run(self, counters: Counters, symbols: tuple[str, ...]) -> None:
        try:
            while True:
                if self.open_orders and self.rng.random() < 0.25:
                    self.cancel()
                    continue
                if not counters.take_order():
                    return
                self.place(self.rng.choice(symbols))
        finally:
            self.transport.close()

    def place(self, symbol: str) -> None:
        client_id = f"chaos-{self.account_id}-{uuid.UUID(int=self.rng.getrandbits(128)).hex[:20]}"
        params = {**order_params(self.rng, symbol), "newClientOrderId": client_id,
                  "newOrderRespType": "RESULT"}  # fmt: skip
        answer = self._record("place", "order.place", symbol, client_id, params)
        if answer.status == 200 and answer.body and answer.body.get("status") in OPEN:
            self.open_orders.append((symbol, client_id))

    def cancel(self) -> None:
        # never the same order twice: a second cancel's "unknown order" would be right too
        symbol, client_id = self.open_orders.pop(self.rng.randrange(len(self.open_orders)))
        params = {"symbol": symbol, "origClientOrderId": client_id}
        self._record("cancel", "order.cancel", symbol, client_id, params)

    def _record(
        self, kind: str, method: str, symbol: str, client_id: str, params: dict[str, Any]
    ) -> Answer:
        sent_at = time.time()
        status, body, failure = self.transport.call(method, params)
        answer = Answer(kind, self.transport.name, self.account_id, symbol, client_id, status,
                        body if isinstance(body, dict) else None, failure, sent_at,
                        time.time())  # fmt: skip
        self.answers.append(answer)
        return answer


def run_clients(runs: list[ClientRun], counters: Counters, symbols: tuple[str, ...]) -> None:
    threads = [
        threading.Thread(target=r.run, args=(counters, symbols), name=f"client-{r.account_id}")
        for r in runs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
