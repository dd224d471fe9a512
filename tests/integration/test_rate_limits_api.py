"""Rate limits and the userDataStream listenKeys end to end: HTTP -> local gateway ->
functions -> counters in Redis and bans in DynamoDB (moto), with small limits set through the
environment.

One private exchange for the module (api_support.ApiStack). The weight test sends from its own
loopback address (127.0.0.2), so that its ban does not stop the other tests (127.0.0.1).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from bourse.adapters import redis_conn
from bourse.adapters.listen_keys import ListenKeys
from bourse.adapters.rate_limit_counters import RedisCounters
from bourse.adapters.rate_limit_store import DynamoBans, RateLimitStore
from bourse.api import rate_limits as rl
from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Client, Trader, now_ms

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_RATE_LIMITS_REDIS_DB", "22"))
WEIGHT_LIMIT, ORDERS_10S, ORDERS_DAY = 1000, 3, 6
LIMITS = rl.Limits(WEIGHT_LIMIT, ORDERS_10S, ORDERS_DAY)
RESTING = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
           "quantity": "0.01", "price": "20000", "newOrderRespType": "ACK"}  # fmt: skip


@pytest.fixture(scope="module")
def stack(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    s = ApiStack(local_stack, tmp_path_factory.mktemp("rate-limits"), REDIS_DB)
    s.env["BOURSE_RATE_LIMIT_WEIGHT_PER_MINUTE"] = str(WEIGHT_LIMIT)
    s.env["BOURSE_RATE_LIMIT_ORDERS_PER_10S"] = str(ORDERS_10S)
    s.env["BOURSE_RATE_LIMIT_ORDERS_PER_DAY"] = str(ORDERS_DAY)
    try:
        s.start()
        yield s
    finally:
        s.stop()


class _FromAddress(HTTPAdapter):
    """Connections from another loopback address: the gateway sees it as sourceIp."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def _wait_for_window(window: rl.Window, at_least_ms: int) -> None:
    """Sleep into the next window when fewer than ``at_least_ms`` are left in this one, so that
    a test's requests all fall in one window."""
    now = now_ms()
    if window.end(now) - now < at_least_ms:
        time.sleep((window.end(now) - now + 50) / 1000)


def _next_window(window: rl.Window) -> None:
    """Sleep until the next window starts: a whole window for what must fall in one."""
    now = now_ms()
    time.sleep((window.end(now) - now + 20) / 1000)


def _ok(response: requests.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def test_weight_headers_429_then_418(stack: ApiStack) -> None:
    session = requests.Session()
    session.mount("http://", _FromAddress("127.0.0.2"))
    depth = f"{stack.base_url}/api/v3/depth?symbol=BTCUSDT&limit=5000"  # weight 250
    _wait_for_window(rl.WEIGHT_WINDOW, 30_000)
    used = []
    for _ in range(WEIGHT_LIMIT // 250):
        response = session.get(depth, timeout=30)
        assert response.status_code == 200, response.text
        used.append(int(response.headers["X-MBX-USED-WEIGHT-1M"]))
        assert response.headers["X-MBX-USED-WEIGHT"] == response.headers["X-MBX-USED-WEIGHT-1M"]
    assert used == [250, 500, 750, 1000]
    throttled = session.get(depth, timeout=30)
    assert throttled.status_code == 429
    assert throttled.json() == {
        "code": -1003,
        "msg": "Too much request weight used; current limit is 1000 request weight per "
        "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
    }
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert throttled.headers["X-MBX-USED-WEIGHT-1M"] == "1250"
    # Sent again without waiting: banned for 2 minutes, whatever the endpoint.
    banned = session.get(f"{stack.base_url}/api/v3/ping", timeout=30)
    assert banned.status_code == 418
    body = banned.json()
    assert body["code"] == -1003 and body["msg"].startswith(
        "Way too much request weight used; IP banned until "
    )
    until = int(body["msg"].split("until ")[1].split(".")[0])
    assert 110_000 <= until - now_ms() <= 120_000
    assert 110 <= int(banned.headers["Retry-After"]) <= 120
    again = session.get(f"{stack.base_url}/api/v3/time", timeout=30)
    assert again.status_code == 418 and again.json() == body  # the same ban, not a longer one
    # Other addresses are not affected.
    other = _ok(stack.client().public("GET", "/api/v3/ping"))
    assert other == {}


def test_exchange_info_publishes_the_enforced_limits(stack: ApiStack) -> None:
    response = stack.client().public("GET", "/api/v3/exchangeInfo")
    assert _ok(response)["rateLimits"] == LIMITS.published()
    assert int(response.headers["X-MBX-USED-WEIGHT-1M"]) >= 20


def _open_count(client: Client) -> int:
    return len(_ok(client.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})))


def test_orders_limit_refuses_and_executes_nothing(stack: ApiStack) -> None:
    trader: Trader = stack.trader(31, {"USDT": "100000"})
    client = stack.client(trader)
    _next_window(rl.ORDERS_10S)
    counts = []
    for _ in range(ORDERS_10S):
        response = client.signed("POST", "/api/v3/order", RESTING)
        assert response.status_code == 200, response.text
        counts.append(
            (response.headers["X-MBX-ORDER-COUNT-10S"], response.headers["X-MBX-ORDER-COUNT-1D"])
        )
    assert counts == [("1", "1"), ("2", "2"), ("3", "3")]
    refused = client.signed("POST", "/api/v3/order", RESTING)
    assert refused.status_code == 429
    assert refused.json() == {
        "code": -1015,
        "msg": "Too many new orders; current limit is 3 orders per 10 SECOND.",
    }
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    assert refused.headers["X-MBX-ORDER-COUNT-10S"] == "4"
    # rateLimit/order shows the counts of this window; order/test counts weight only.
    status = client.signed("GET", "/api/v3/rateLimit/order")
    assert _ok(status) == LIMITS.order_status(rl.OrderCounts(4, 4))
    test = client.signed("POST", "/api/v3/order/test", RESTING)
    assert test.status_code == 200 and "X-MBX-ORDER-COUNT-10S" not in test.headers
    assert _open_count(client) == ORDERS_10S  # the refused order never reached the engine

    # The next 10 seconds: the day's limit (6) is what refuses now.
    _next_window(rl.ORDERS_10S)
    for expected in ("5", "6"):
        response = client.signed("POST", "/api/v3/order", RESTING)
        assert response.status_code == 200, response.text
        assert response.headers["X-MBX-ORDER-COUNT-1D"] == expected
    refused = client.signed("POST", "/api/v3/order", RESTING)
    assert refused.status_code == 429
    assert refused.json()["msg"] == "Too many new orders; current limit is 6 orders per 1 DAY."
    assert _open_count(client) == ORDERS_10S + 2
    assert _ok(client.signed("GET", "/api/v3/rateLimit/order"))[1]["count"] == 7


def test_listen_key_lifecycle(stack: ApiStack) -> None:
    trader = stack.trader(32, {})
    session = requests.Session()
    url = f"{stack.base_url}/api/v3/userDataStream"
    key_header = {"X-MBX-APIKEY": trader.api_key}
    store = ListenKeys(stack.settings.listen_keys_table, stack.commands_topic)

    created = session.post(url, headers=key_header, timeout=30)
    listen_key = _ok(created)["listenKey"]
    assert set(_ok(created)) == {"listenKey"} and len(listen_key) == 60
    assert created.headers["X-MBX-USED-WEIGHT-1M"]
    assert _ok(session.post(url, headers=key_header, timeout=30)) == {"listenKey": listen_key}
    assert store.lookup(listen_key) == 32
    params = {"listenKey": listen_key}
    assert _ok(session.put(url, params=params, headers=key_header, timeout=30)) == {}
    assert _ok(session.delete(url, params=params, headers=key_header, timeout=30)) == {}
    assert store.lookup(listen_key) is None
    gone = session.put(url, params=params, headers=key_header, timeout=30)
    assert gone.status_code == 400
    assert gone.json() == {"code": -1125, "msg": "This listenKey does not exist."}
    fresh = _ok(session.post(url, headers=key_header, timeout=30))["listenKey"]
    assert fresh != listen_key and store.lookup(fresh) == 32
    # Another account's key cannot touch it; without an API key nothing is answered.
    other = stack.trader(33, {})
    stolen = session.delete(url, params={"listenKey": fresh},
                            headers={"X-MBX-APIKEY": other.api_key}, timeout=30)  # fmt: skip
    assert stolen.status_code == 400 and stolen.json()["code"] == -1125
    assert store.lookup(fresh) == 32
    anonymous = session.post(url, timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == -2014


def test_listen_key_validity(local_stack: Settings) -> None:
    """The store on its own, with the clock moved: 60 minutes from the last keepalive."""
    keys = ListenKeys(local_stack.listen_keys_table, f"test-{uuid.uuid4().hex}")
    t0 = now_ms()
    minute = 60_000
    key = keys.create(5, t0)
    assert keys.lookup(key, t0 + 59 * minute) == 5
    assert keys.lookup(key, t0 + 60 * minute) is None
    assert keys.keepalive(key, 5, t0 + 30 * minute)
    assert keys.lookup(key, t0 + 89 * minute) == 5
    assert keys.create(5, t0 + 80 * minute) == key  # live: reused (and extended to 140)
    assert keys.lookup(key, t0 + 139 * minute) == 5
    assert not keys.keepalive(key, 5, t0 + 141 * minute)  # expired: gone
    newer = keys.create(5, t0 + 141 * minute)
    assert newer != key and keys.lookup(newer, t0 + 141 * minute) == 5
    assert keys.lookup(key, t0 + 141 * minute) is None
    other_exchange = ListenKeys(local_stack.listen_keys_table, "another-exchange")
    assert other_exchange.lookup(newer, t0 + 141 * minute) is None


def _store(local_stack: Settings) -> RateLimitStore:
    """The functions' store on the module's Redis database, in a scope of its own."""
    scope = f"test-{uuid.uuid4().hex}"
    client = redis_conn.connect(local_stack.redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}")
    bans = DynamoBans(local_stack.rate_limits_table, scope)
    return RateLimitStore(RedisCounters(client, scope), bans, LIMITS)


def test_counter_windows_and_ban_memory(local_stack: Settings) -> None:
    """The store on its own: windows reset, bans outlive their minute and escalate."""
    store = _store(local_stack)
    t0 = rl.WEIGHT_WINDOW.start(now_ms())
    assert store.add_weight("ip", 7, t0) == rl.IpUsage(7, 0, 0)
    assert store.add_weight("ip", 5, t0 + 59_999) == rl.IpUsage(12, 0, 0)
    assert store.add_weight("ip", 5, t0 + 60_000) == rl.IpUsage(5, 0, 0)
    until = rl.ban_until(rl.IpUsage(5), t0 + 60_000)
    assert store.ban("ip", until, 1, t0 + 60_000) == until
    assert store.ban("ip", until + 1, 1, t0 + 60_001) == until  # one ban at a time
    later = store.add_weight("ip", 1, t0 + 5 * 60_000)
    assert later == rl.IpUsage(1, until, 1)
    assert rl.ban_until(later, until) - until == 240_000  # the second ban: 4 minutes
    day = rl.ORDERS_DAY.start(now_ms())
    assert store.add_order(1, day) == rl.OrderCounts(1, 1)
    assert store.add_order(1, day + 10_000) == rl.OrderCounts(1, 2)
    assert store.order_counts(1, day + 10_001) == rl.OrderCounts(1, 2)
    assert store.order_counts(1, day + 20_000) == rl.OrderCounts(0, 2)
    # Weight and orders in one round trip; each window's key expires after its window.
    usage, orders = store.count("ip2", 3, 2, day + 30_000) or (None, None)
    assert usage == rl.IpUsage(3, 0, 0) and orders == rl.OrderCounts(1, 1)


def test_ban_survives_a_lost_mirror(local_stack: Settings) -> None:
    """DynamoDB holds the ban: a container whose Redis mirror is gone finds the ban still
    running when it would ban again, and mirrors it back."""
    store = _store(local_stack)
    now = now_ms()
    until = rl.ban_until(rl.IpUsage(0), now)
    assert store.ban("ip", until, 1, now) == until
    store.counters.client.delete(f"rl:{{{store.counters.scope}|ip|ip}}:ban")
    assert store.add_weight("ip", 1, now + 1) == rl.IpUsage(1, 0, 0)
    assert store.ban("ip", until + 5_000, 1, now + 5_000) == until
    assert store.add_weight("ip", 1, now + 5_001) == rl.IpUsage(2, until, 1)


def test_fails_open_when_redis_does_not_answer(local_stack: Settings) -> None:
    scope = f"test-{uuid.uuid4().hex}"
    dead = redis_conn.connect("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    store = RateLimitStore(
        RedisCounters(dead, scope), DynamoBans(local_stack.rate_limits_table, scope), LIMITS
    )
    assert store.count("ip", 1, 1, now_ms()) is None
    assert store.add_weight("ip", 1, now_ms()) is None
