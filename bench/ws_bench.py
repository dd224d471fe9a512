"""`make bench-ws`: fan-out latency of a market stream to many WebSocket connections, with the
whole pipeline live: REST order -> gateway -> OrdersFunction -> Kafka -> matching service ->
bourse.events -> broadcaster (local MSK poller) -> @connections -> gateway -> client.

A private exchange (its own topics, Redis database, gateway port and DynamoDB tables; see
tests/integration/api_support.py and ws_support.py) plus the broadcaster; ``--connections``
clients (one asyncio loop, a minimal RFC 6455 client) subscribe to ``btcusdt@trade``; two
funded accounts then place ``--trades`` crossing pairs of LIMIT orders at ``--rate`` pairs/s,
one trade each.
Latency is the client's receipt time minus the trade message's ``E``: the engine event's time,
which is the command's timestamp, taken by the orders function when it accepted the taker
order. So it covers Kafka, matching, the broadcaster and the whole fan-out, everything but the
client's REST request to the orders function. Same host, same clock.

Before measuring, warm-up trades (unmeasured) go out until every connection has received one
or ``--warmup`` of them went by: a connection that received one is *subscribed*, and only
those are counted. Every measured trade must reach every subscribed connection, as a trade
message of BTCUSDT at the price and quantity placed, once: ``missing`` counts those that did
not (not received within ``--drain`` seconds of the last order, wrong or duplicated, and the
trades whose orders were refused or not sent, for every subscribed connection).

Ends with exactly one line: ``ws: connections=<C> p50=<x>ms p99=<y>ms missing=<m>``, C the
subscribed connections.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from bourse.adapters import aws
from bourse.settings import get_settings
from tests.integration.api_support import ApiStack, Trader
from tests.integration.ws_support import private_tables

REDIS_DB = 29


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455's handshake constant
_decode = msgspec.json.decode


class _Stream(asyncio.Protocol):
    """One client connection: RFC 6455's handshake, then the server's text frames.

    Why not the ``websockets`` client used elsewhere: its per-message Python (frame objects,
    a message queue, a task switch per ``recv``) cost ~85 us a message here, and 1,000 clients
    on the same 2 cores as the gateway and the broadcaster made the client a share of what was
    measured. Frames are parsed as they arrive (a server's are unmasked; the gateway never
    fragments, and a fragmented or binary frame is counted as wrong by the caller).
    """

    def __init__(self, key: bytes, on_text: Callable[[bytes, float], None]) -> None:
        self._accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self._on_text = on_text
        self._buffer = bytearray()
        self.open: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        now_ms = time.time_ns() / 1e6
        buffer = self._buffer
        buffer += data
        if not self.open.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            del buffer[: end + 4]
            if not head.startswith(b"http/1.1 101") or self._accept.lower() not in head:
                self.open.set_exception(ConnectionError(head.split(b"\r\n")[0].decode()))
                return
            self.open.set_result(None)
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            size, start = second & 0x7F, 2
            if size == 126:
                size, start = int.from_bytes(buffer[2:4], "big"), 4
            elif size == 127:
                size, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + size:
                return
            payload = bytes(buffer[start : start + size])
            del buffer[: start + size]
            opcode = first & 0x0F
            if opcode == 0x8:  # close: answer it (masked, as a client must) and stop
                if self._transport is not None:
                    self._transport.write(b"\x88\x80" + os.urandom(4))
                    self._transport.close()
                return
            if opcode == 0x9 and self._transport is not None:  # ping: the pong, masked
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self._transport.write(bytes((0x8A, 0x80 | len(payload))) + mask + masked)
            elif opcode in (0x0, 0x1, 0x2):
                self._on_text(payload if first & 0x80 and opcode == 0x1 else b"", now_ms)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.open.done():
            self.open.set_exception(exc or ConnectionError("closed"))
        if not self.closed.done():
            self.closed.set_result(None)


class Clients:
    """Every connection in one event loop (a thread of its own). Each connection records the
    trades it receives: id -> (latency ms, whether the message is the one placed)."""

    def __init__(self, url: str, count: int) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.path = parts.hostname or "", parts.port or 80, parts.path
        self.count = count
        self.received: list[dict[int, tuple[float, bool]]] = [{} for _ in range(count)]
        self.duplicates = 0
        self.connected = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def _on_text(self, index: int, raw: bytes, now_ms: float) -> None:
        mine = self.received[index]
        try:
            message = _decode(raw)
        except msgspec.DecodeError:
            message = {}
        trade_id = int(message.get("t", -1))
        if trade_id in mine:
            self.duplicates += 1
            mine[trade_id] = (mine[trade_id][0], False)
            return
        expected = (message.get("e"), message.get("s"), message.get("p"),
                    message.get("q")) == ("trade", "BTCUSDT", PRICE, QUANTITY)  # fmt: skip
        mine[trade_id] = (now_ms - float(message.get("E", 0)), expected)

    async def _one(self, index: int, opened: asyncio.Semaphore) -> None:
        key = base64.b64encode(os.urandom(16))
        async with opened:
            _, stream = await self.loop.create_connection(
                lambda: _Stream(key, lambda raw, at: self._on_text(index, raw, at)),
                self.host,
                self.port,
            )
            stream._transport.write(  # type: ignore[union-attr]
                f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key.decode()}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
            )
            await asyncio.wait_for(stream.open, 120)
        self.connected += 1
        try:
            await stream.closed
        finally:
            if stream._transport is not None:
                stream._transport.close()

    async def _start(self) -> None:
        # A few handshakes at a time: each one runs the $connect function and a subscribe.
        opened = asyncio.Semaphore(16)
        self._tasks = [asyncio.ensure_future(self._one(i, opened)) for i in range(self.count)]

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result()

    def total(self) -> int:
        return sum(len(r) for r in self.received)

    async def _close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self.loop).result(timeout=120)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


PRICE, QUANTITY = "30000.00000000", "0.00100000"  # as the trade stream formats them


def wait_quiet(clients: Clients, until: float, done: Callable[[], bool], quiet_s: float) -> None:
    """Until ``done``, ``until`` or ``quiet_s`` without a new message."""
    last, quiet_since = -1, time.monotonic()
    while not done() and time.monotonic() < until:
        total = clients.total()
        if total != last:
            last, quiet_since = total, time.monotonic()
        elif time.monotonic() - quiet_since > quiet_s:
            return
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--trades", type=int, default=30)
    parser.add_argument("--rate", type=float, default=1.0, help="trades/s")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured trades, at most")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds after the last order")
    parser.add_argument("--redis-db", type=int, default=REDIS_DB)
    parser.add_argument("--logs", help="keep the processes' logs in this folder")
    parser.add_argument("--subscribers-ttl-ms", type=int, default=10_000)
    parser.add_argument(
        "--shard-size",
        type=int,
        help="connections per pusher shard (default: template.yaml's); 0: no pushers, the "
        "broadcaster posts to every connection itself",
    )
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    settings = get_settings()
    latencies: list[float] = []
    subscribed, missing = 0, 0
    with (
        tempfile.TemporaryDirectory(prefix="bench-ws-") as scratch,
        private_tables(aws.client("dynamodb"), settings) as tables,
    ):
        logs = args.logs or scratch
        stack = ApiStack(settings, Path(logs), args.redis_db)
        # Tables of its own (connections of earlier runs would answer 410), no rate limits.
        stack.env.update(tables)
        stack.env["BOURSE_RATE_LIMITS_ENABLED"] = "false"
        # Subscriber lists may be served up to two TTLs old (docs/streams.md): trades come a
        # second apart here, and a refetch of 1,000 subscribers from moto takes a second of
        # moto's CPU, which a 1 s TTL would spend on every other trade.
        stack.env["BOURSE_BROADCASTER_SUBSCRIBERS_TTL_MS"] = str(args.subscribers_ttl_ms)
        if args.shard_size == 0:
            stack.env["BOURSE_PUSHER_FUNCTION"] = ""
        elif args.shard_size is not None:
            stack.env["BOURSE_PUSHER_SHARD_SIZE"] = str(args.shard_size)
        clients: Clients | None = None
        try:
            _log(f"starting a private exchange and broadcaster (logs in {logs})")
            stack.start()
            stack.spawn_broadcaster()
            sellers: Trader = stack.trader(1, {"BTC": "100000"})
            buyers: Trader = stack.trader(2, {"USDT": "10000000000"})
            sell, buy = stack.client(sellers), stack.client(buyers)
            url = f"ws://127.0.0.1:{stack.port}/ws/btcusdt@trade"
            clients = Clients(url, args.connections)
            started = time.monotonic()
            clients.start()
            while clients.connected < args.connections:
                assert time.monotonic() - started < 600, f"{clients.connected} connected"
                time.sleep(0.2)
            _log(f"{clients.connected} connections in {time.monotonic() - started:.1f}s")
            order = {"symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC",
                     "quantity": QUANTITY, "price": PRICE, "newOrderRespType": "ACK"}  # fmt: skip

            def trade() -> bool:
                """One crossing pair; whether both orders were accepted."""
                ok = True
                for client, side in ((sell, "SELL"), (buy, "BUY")):
                    try:
                        answer = client.signed("POST", "/api/v3/order", {**order, "side": side})
                        ok = ok and answer.status_code == 200 and "orderId" in answer.json()
                    except Exception as exc:  # counted: the trade's messages go missing
                        _log(f"order not sent: {exc!r}")
                        ok = False
                return ok

            # Warm-up (containers, the broadcaster's first lookups), not measured: until every
            # connection got a trade (each one that did is subscribed), at least two trades.
            def all_reached() -> bool:
                return all(clients.received)

            for i in range(args.warmup):
                trade()
                wait_quiet(clients, time.monotonic() + 60, all_reached, 5.0)
                if i >= 1 and all_reached():
                    break
            wait_quiet(clients, time.monotonic() + 30, lambda: False, 2.0)
            subscribed_ix = [i for i, r in enumerate(clients.received) if r]
            subscribed = len(subscribed_ix)
            warm_ids = {t for r in clients.received for t in r}
            if subscribed < args.connections:
                _log(f"only {subscribed} of {args.connections} connections are subscribed")
            refused = 0
            start = time.perf_counter()
            for i in range(args.trades):
                pause = start + i / args.rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                refused += not trade()
            expected = (args.trades - refused) * subscribed
            deadline = time.monotonic() + args.drain

            def measured() -> int:
                return sum(
                    1 for i in subscribed_ix for t in clients.received[i] if t not in warm_ids
                )

            wait_quiet(clients, deadline, lambda: measured() >= expected, args.drain)
            wrong = 0
            for i in subscribed_ix:
                for trade_id, (latency, right) in list(clients.received[i].items()):
                    if trade_id in warm_ids:
                        continue
                    latencies.append(latency)
                    wrong += not right
            received = len(latencies)
            missing = args.trades * subscribed - received + wrong
            _log(f"{args.trades} trades ({refused} refused or unsent), {received} of "
                 f"{args.trades * subscribed} messages received, {wrong} wrong or duplicated, "
                 f"{clients.duplicates} duplicates in all")  # fmt: skip
        finally:
            if clients is not None:
                clients.stop()
            stack.stop()
    p50 = percentile(latencies, 0.50) if latencies else float("nan")
    p99 = percentile(latencies, 0.99) if latencies else float("nan")
    print(f"ws: connections={subscribed} p50={p50:.1f}ms p99={p99:.1f}ms missing={missing}",
          flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
