"""The REST API end to end: HTTP -> local gateway (template.yaml's routes, the authorizer) ->
functions -> Kafka -> the real matching service -> Redis -> the response.

One private exchange for the module (api_support.ApiStack). The hostile table checks that each
malformed or unauthorised request gets Binance's exact code and HTTP status and leaves both
accounts exactly as they were.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from bourse.adapters.redis_book import SYMBOLS_KEY, encode_spec
from bourse.domain.markets import DEFAULT_MARKETS
from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Client, Trader, now_ms

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Redis databases of their own (the tests flush them): 13 matching, 12 reconcile, 11 record.
REDIS_DB = int(os.environ.get("BOURSE_TEST_API_REDIS_DB", "8"))
TIMEOUT_REDIS_DB = int(os.environ.get("BOURSE_TEST_API_TIMEOUT_REDIS_DB", "7"))


@pytest.fixture(scope="module")
def stack(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    s = ApiStack(local_stack, tmp_path_factory.mktemp("api"), REDIS_DB)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def alice(stack: ApiStack) -> Trader:
    return stack.trader(1, {"BTC": "2", "USDT": "100000"})


@pytest.fixture(scope="module")
def bob(stack: ApiStack) -> Trader:
    return stack.trader(2, {"BTC": "1", "USDT": "50000"})


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _balances(client: Client) -> dict[str, tuple[str, str]]:
    body = _ok(client.signed("GET", "/api/v3/account"))
    return {b["asset"]: (b["free"], b["locked"]) for b in body["balances"]}


# ------------------------------------------------------------------------------ public


def test_market_data(stack: ApiStack) -> None:
    c = stack.client()
    assert _ok(c.public("GET", "/api/v3/ping")) == {}
    server_time = _ok(c.public("GET", "/api/v3/time"))["serverTime"]
    assert abs(server_time - now_ms()) < 5000
    info = _ok(c.public("GET", "/api/v3/exchangeInfo"))
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT", "ETHBTC", "ETHUSDT"]
    btc = _ok(c.public("GET", "/api/v3/exchangeInfo", symbol="BTCUSDT"))["symbols"][0]
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"] == {
        "filterType": "PRICE_FILTER",
        "minPrice": "0.01000000",
        "maxPrice": "1000000.00000000",
        "tickSize": "0.01000000",
    }
    assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
    assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
    assert btc["baseAsset"] == "BTC" and btc["quoteAsset"] == "USDT"
    assert {r["rateLimitType"] for r in info["rateLimits"]} >= {"REQUEST_WEIGHT", "ORDERS"}
    depth = _ok(c.public("GET", "/api/v3/depth", symbol="ETHBTC", limit=5))
    assert depth == {"lastUpdateId": 0, "bids": [], "asks": []}


# ------------------------------------------------------------------------------ trading


def test_limit_fill_cancel_and_balances(stack: ApiStack, alice: Trader, bob: Trader) -> None:
    a, b = stack.client(alice), stack.client(bob)
    assert _balances(a) == {
        "BTC": ("2.00000000", "0.00000000"),
        "USDT": ("100000.00000000", "0.00000000"),
    }
    sell = _ok(
        a.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                 "timeInForce": "GTC", "quantity": "0.5", "price": "30000",
                 "newClientOrderId": "alice-sell-1"})
    )  # fmt: skip
    assert sell["status"] == "NEW" and sell["fills"] == [] and sell["orderId"] == 1
    assert sell["clientOrderId"] == "alice-sell-1" and sell["origQty"] == "0.50000000"
    depth = _ok(a.public("GET", "/api/v3/depth", symbol="BTCUSDT"))
    assert depth["asks"] == [["30000.00000000", "0.50000000"]] and depth["lastUpdateId"] >= 1
    open_ = _ok(a.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"}))
    assert [o["orderId"] for o in open_] == [1] and open_[0]["status"] == "NEW"
    got = _ok(a.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 1}))
    assert got["clientOrderId"] == "alice-sell-1" and got["isWorking"] is True
    assert _balances(a)["BTC"] == ("1.50000000", "0.50000000")

    buy = _ok(
        b.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                 "timeInForce": "GTC", "quantity": "0.2", "price": "30000",
                 "newOrderRespType": "RESULT"})
    )  # fmt: skip
    assert buy["status"] == "FILLED" and buy["executedQty"] == "0.20000000"
    assert buy["cummulativeQuoteQty"] == "6000.00000000" and "fills" not in buy
    market = _ok(
        b.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY",
                 "type": "MARKET", "quantity": "0.1"})
    )  # fmt: skip
    assert market["status"] == "FILLED"
    assert market["fills"] == [
        {"price": "30000.00000000", "qty": "0.10000000", "commission": "0.00010000",
         "commissionAsset": "BTC", "tradeId": 2}
    ]  # fmt: skip
    ack = _ok(
        b.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                 "timeInForce": "GTC", "quantity": "0.01", "price": "25000",
                 "newOrderRespType": "ACK"})
    )  # fmt: skip
    assert set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}

    assert _ok(b.public("GET", "/api/v3/ticker/price", symbol="BTCUSDT")) == {
        "symbol": "BTCUSDT",
        "price": "30000.00000000",
    }
    assert _ok(b.public("GET", "/api/v3/ticker/bookTicker", symbol="BTCUSDT")) == {
        "symbol": "BTCUSDT",
        "bidPrice": "25000.00000000",
        "bidQty": "0.01000000",
        "askPrice": "30000.00000000",
        "askQty": "0.20000000",
    }
    partially = _ok(
        a.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT", "origClientOrderId": "alice-sell-1"})
    )
    assert partially["status"] == "PARTIALLY_FILLED" and partially["executedQty"] == "0.30000000"
    canceled = _ok(a.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 1}))
    assert canceled["status"] == "CANCELED" and canceled["origClientOrderId"] == "alice-sell-1"
    assert _ok(a.signed("GET", "/api/v3/openOrders")) == []
    # Alice sold 0.3 BTC at 30000 = 9000 USDT, less 0.1% commission (9 USDT).
    assert _balances(a) == {
        "BTC": ("1.70000000", "0.00000000"),
        "USDT": ("108991.00000000", "0.00000000"),
    }
    assert _balances(b)["BTC"] == ("1.29970000", "0.00000000")  # 0.3 less 0.0003 commission

    # cancel-replace, then cancel everything that is left.
    replaced = _ok(
        b.signed("POST", "/api/v3/order/cancelReplace", {"symbol": "BTCUSDT", "side": "BUY",
                 "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.02", "price": "24000",
                 "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": ack["orderId"]})
    )  # fmt: skip
    assert replaced["cancelResult"] == "SUCCESS" and replaced["newOrderResult"] == "SUCCESS"
    assert replaced["newOrderResponse"]["status"] == "NEW"
    canceled_all = _ok(b.signed("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"}))
    assert [o["status"] for o in canceled_all] == ["CANCELED"]
    assert _ok(b.signed("GET", "/api/v3/openOrders")) == []
    # The same request retried (new timestamp and signature): the first answer, no new order.
    idem = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.01", "price": "20000", "newClientOrderId": "bob-idem-1"}  # fmt: skip
    first = _ok(b.signed("POST", "/api/v3/order", idem))
    assert _ok(b.signed("POST", "/api/v3/order", idem)) == first
    assert [o["orderId"] for o in _ok(b.signed("GET", "/api/v3/openOrders"))] == [first["orderId"]]
    _ok(b.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": first["orderId"]}))
    test = _ok(
        b.signed("POST", "/api/v3/order/test", {"symbol": "BTCUSDT", "side": "BUY",
                 "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "20000",
                 "computeCommissionRates": "true"})
    )  # fmt: skip
    assert test["standardCommissionForOrder"] == {"maker": "0.00100000", "taker": "0.00100000"}


def test_client_order_id_is_free_again_once_the_order_closed(
    stack: ApiStack, alice: Trader
) -> None:
    """Issue 15: the same request again is a retry while its order is open (the first answer,
    nothing placed) and a new order once it has closed (it used to replay the old answer)."""
    a = stack.client(alice)
    order = _limit(newClientOrderId="reuse-after-close", price="19000", newOrderRespType="RESULT")
    first = _ok(a.signed("POST", "/api/v3/order", order))
    assert _ok(a.signed("POST", "/api/v3/order", order)) == first
    ids = [o["orderId"] for o in _ok(a.signed("GET", "/api/v3/openOrders"))]
    assert ids.count(first["orderId"]) == 1 and len(ids) == len(set(ids))
    other = _limit(newClientOrderId="reuse-after-close", price="19001")
    response = a.signed("POST", "/api/v3/order", other)
    assert (response.status_code, response.json()["code"]) == (400, -2010)
    _ok(a.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": first["orderId"]}))
    second = _ok(a.signed("POST", "/api/v3/order", order))
    assert second["orderId"] != first["orderId"] and second["status"] == "NEW"
    assert second["clientOrderId"] == "reuse-after-close"
    _ok(a.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": second["orderId"]}))


# ------------------------------------------------------------------------------ hostile table

LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.01", "price": "20000"}  # fmt: skip


def _limit(**changes: Any) -> dict[str, Any]:
    out = dict(LIMIT)
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


# USER_STREAM requests: the API key alone, no timestamp or signature.
UNSIGNED = {"sign": False, "with_timestamp": False}
# (id, method, path, params, options, expected HTTP status, expected code, message or None)
CASES: list[tuple[str, str, str, dict[str, Any], dict[str, Any], int, int, str | None]] = [
    ("missing signature", "POST", "/api/v3/order", LIMIT, {"sign": False}, 400, -1102,
     "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."),
    ("bad signature", "POST", "/api/v3/order", LIMIT, {"secret": "x" * 64}, 400, -1022,
     "Signature for this request is not valid."),
    ("missing timestamp", "POST", "/api/v3/order", LIMIT, {"with_timestamp": False}, 400, -1102,
     None),
    ("stale timestamp", "POST", "/api/v3/order", LIMIT, {"timestamp": -10_000}, 400, -1021,
     "Timestamp for this request is outside of the recvWindow."),
    ("future timestamp", "POST", "/api/v3/order", LIMIT, {"timestamp": 5_000}, 400, -1021,
     "Timestamp for this request was 1000ms ahead of the server's time."),
    ("recvWindow too large", "POST", "/api/v3/order", _limit(recvWindow="70000"), {}, 400,
     -1131, None),
    ("timestamp not a number", "GET", "/api/v3/account", {"timestamp": "abc"},
     {"with_timestamp": False}, 400, -1100, None),
    ("no API key", "POST", "/api/v3/order", LIMIT, {"api_key": ""}, 401, -2014,
     "API-key format invalid."),
    ("malformed API key", "GET", "/api/v3/account", {}, {"api_key": "not a key!"}, 401, -2014,
     None),
    ("unknown API key", "GET", "/api/v3/account", {}, {"api_key": "A" * 64}, 401, -2015,
     "Invalid API-key, IP, or permissions for action."),
    ("IP not allowed", "GET", "/api/v3/account", {}, {"trader": "walled"}, 401, -2015, None),
    ("no TRADE permission", "POST", "/api/v3/order", LIMIT, {"trader": "reader"}, 401, -2015,
     None),
    ("no USER_DATA permission", "GET", "/api/v3/account", {}, {"trader": "trader_only"}, 401,
     -2015, None),
    ("unknown symbol", "POST", "/api/v3/order", _limit(symbol="NOPENOPE"), {}, 400, -1121,
     "Invalid symbol."),
    ("unknown symbol depth", "GET", "/api/v3/depth", {"symbol": "NOPE"}, {"public": True}, 400,
     -1121, None),
    ("depth limit 0", "GET", "/api/v3/depth", {"symbol": "BTCUSDT", "limit": "0"},
     {"public": True}, 400, -1130, None),
    ("too precise price", "POST", "/api/v3/order", _limit(price="20000.000000001"), {}, 400,
     -1111, "Precision is over the maximum defined for this asset."),
    ("price off tick", "POST", "/api/v3/order", _limit(price="20000.001"), {}, 400, -1013,
     "Filter failure: PRICE_FILTER"),
    ("quantity off step", "POST", "/api/v3/order", _limit(quantity="0.000001"), {}, 400, -1013,
     "Filter failure: LOT_SIZE"),
    ("notional too small", "POST", "/api/v3/order", _limit(price="100", quantity="0.00001"), {},
     400, -1013, "Filter failure: NOTIONAL"),
    ("negative quantity", "POST", "/api/v3/order", _limit(quantity="-1"), {}, 400, -1100, None),
    ("NaN price", "POST", "/api/v3/order", _limit(price="NaN"), {}, 400, -1100, None),
    ("exponent quantity", "POST", "/api/v3/order", _limit(quantity="1e3"), {}, 400, -1100, None),
    ("huge price", "POST", "/api/v3/order", _limit(price="99999999999999999999"), {}, 400,
     -1100, None),
    ("zero quantity", "POST", "/api/v3/order", _limit(quantity="0"), {}, 400, -1013,
     "Invalid quantity."),
    ("price above max", "POST", "/api/v3/order", _limit(price="2000000"), {}, 400, -1013,
     "Filter failure: PRICE_FILTER"),
    ("missing side", "POST", "/api/v3/order", _limit(side=None), {}, 400, -1102, None),
    ("invalid side", "POST", "/api/v3/order", _limit(side="HOLD"), {}, 400, -1117,
     "Invalid side."),
    ("invalid type", "POST", "/api/v3/order", _limit(type="LIMITED"), {}, 400, -1116, None),
    ("invalid timeInForce", "POST", "/api/v3/order", _limit(timeInForce="GTX"), {}, 400, -1115,
     None),
    ("LIMIT without price", "POST", "/api/v3/order", _limit(price=None), {}, 400, -1102,
     "Mandatory parameter 'price' was not sent, was empty/null, or malformed."),
    ("MARKET with both quantities", "POST", "/api/v3/order",
     _limit(type="MARKET", timeInForce=None, price=None, quoteOrderQty="10"), {}, 400, -1128,
     None),
    ("unknown parameter", "POST", "/api/v3/order", _limit(colour="red"), {}, 400, -1104, None),
    ("empty parameter", "POST", "/api/v3/order", _limit(newClientOrderId=""), {}, 400, -1105,
     None),
    ("illegal client id", "POST", "/api/v3/order", _limit(newClientOrderId="bad id!"), {}, 400,
     -1100, None),
    # Same client id, other parameters (the same request again is a retry: answered as the
    # first, see test_limit_fill_cancel_and_balances).
    ("duplicate client id", "POST", "/api/v3/order",
     _limit(newClientOrderId="resting-1", price="20001"), {}, 400, -2010,
     "Duplicate order sent."),
    ("insufficient balance", "POST", "/api/v3/order", _limit(quantity="100"), {}, 400, -2010,
     "Account has insufficient balance for requested action."),
    ("LIMIT_MAKER would take", "POST", "/api/v3/order",
     _limit(type="LIMIT_MAKER", timeInForce=None, side="SELL", price="19000"), {}, 400, -2010,
     "Order would immediately match and take."),
    ("cancel unknown order", "DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 99999},
     {}, 400, -2011, "Unknown order sent."),
    ("cancel without id", "DELETE", "/api/v3/order", {"symbol": "BTCUSDT"}, {}, 400, -1102,
     None),
    ("cancel all with none open", "DELETE", "/api/v3/openOrders", {"symbol": "ETHUSDT"}, {},
     400, -2011, None),
    ("query unknown order", "GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": 99999}, {},
     400, -2013, "Order does not exist."),
    ("cancel-replace of unknown order", "POST", "/api/v3/order/cancelReplace",
     _limit(cancelReplaceMode="STOP_ON_FAILURE", cancelOrderId="99999"), {}, 400, -2022,
     "Order cancel-replace failed."),
    ("order/test filter failure", "POST", "/api/v3/order/test", _limit(price="20000.001"), {},
     400, -1013, "Filter failure: PRICE_FILTER"),
    ("duplicate parameter", "POST", "/api/v3/order", LIMIT, {"duplicate": True}, 400, -1101,
     None),
    ("oversized body", "POST", "/api/v3/order", _limit(newClientOrderId="x" * 70_000), {}, 413,
     -1101, None),
    ("wrong method", "PUT", "/api/v3/order", LIMIT, {}, 404, -1000, None),
    ("unknown path", "GET", "/api/v3/nothing", {}, {"public": True}, 404, -1000, None),
    ("rateLimit/order unsigned", "GET", "/api/v3/rateLimit/order", {}, {"sign": False}, 400,
     -1102, None),
    ("rateLimit/order without USER_DATA", "GET", "/api/v3/rateLimit/order", {},
     {"trader": "trader_only"}, 401, -2015, None),
    ("listenKey without API key", "POST", "/api/v3/userDataStream", {},
     {"api_key": "", **UNSIGNED}, 401, -2014, "API-key format invalid."),
    ("keepalive of unknown listenKey", "PUT", "/api/v3/userDataStream", {"listenKey": "x" * 60},
     UNSIGNED, 400, -1125, "This listenKey does not exist."),
    ("close of unknown listenKey", "DELETE", "/api/v3/userDataStream", {"listenKey": "y" * 60},
     UNSIGNED, 400, -1125, "This listenKey does not exist."),
    ("keepalive without listenKey", "PUT", "/api/v3/userDataStream", {}, UNSIGNED, 400, -1102,
     "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed."),
    # Whose key acts (issue 15): Alice signs with her secret and sends her key and Bob's. Bob's
    # own requests from this address have left an Allow for his key in the gateway's cache, so
    # the identity API Gateway keys its cache on (the last line) is Bob's either way.
    ("two key spellings, victim's last", "POST", "/api/v3/order", LIMIT,
     {"keys": [("X-MBX-APIKEY", "alice"), ("x-mbx-apikey", "bob")]}, 401, -2014,
     "API-key format invalid."),
    ("two key spellings, victim's first", "POST", "/api/v3/order", LIMIT,
     {"keys": [("x-mbx-apikey", "bob"), ("X-MBX-APIKEY", "alice")]}, 401, -2014, None),
    ("key header twice", "GET", "/api/v3/account", {},
     {"keys": [("X-MBX-APIKEY", "alice"), ("X-MBX-APIKEY", "bob")]}, 401, -2014, None),
    ("own key twice", "GET", "/api/v3/account", {},
     {"keys": [("X-MBX-APIKEY", "alice"), ("X-Mbx-ApiKey", "alice")]}, 401, -2014, None),
    ("two keys, query victim's order", "GET", "/api/v3/order", {"symbol": "BTCUSDT"},
     {"keys": [("X-MBX-APIKEY", "alice"), ("x-mbx-apikey", "bob")], "bob_order": True}, 401,
     -2014, None),
    ("two keys, cancel victim's order", "DELETE", "/api/v3/order", {"symbol": "BTCUSDT"},
     {"keys": [("X-MBX-APIKEY", "alice"), ("x-mbx-apikey", "bob")], "bob_order": True}, 401,
     -2014, None),
    ("two keys, victim's listenKey", "POST", "/api/v3/userDataStream", {},
     {"keys": [("X-MBX-APIKEY", "alice"), ("x-mbx-apikey", "bob")], **UNSIGNED}, 401, -2014,
     None),
    # Alice's own key, Bob's order id: not hers, so it does not exist for her.
    ("query another account's order", "GET", "/api/v3/order", {"symbol": "BTCUSDT"},
     {"bob_order": True}, 400, -2013, "Order does not exist."),
    ("cancel another account's order", "DELETE", "/api/v3/order", {"symbol": "BTCUSDT"},
     {"bob_order": True}, 400, -2011, "Unknown order sent."),
    # Non-ASCII and non-UTF-8 signatures: -1022, never a 500 (issue 15).
    ("non-ASCII signature in the query", "GET", "/api/v3/account", {},
     {"raw_signature": "é".encode(), "in_query": True}, 400, -1022,
     "Signature for this request is not valid."),
    ("percent-encoded non-ASCII signature", "GET", "/api/v3/account", {},
     {"raw_signature": b"%C3%A9", "in_query": True}, 400, -1022, None),
    ("non-ASCII signature in the body", "POST", "/api/v3/order", LIMIT,
     {"raw_signature": "é".encode()}, 400, -1022, None),
    ("non-UTF-8 signature in the body", "POST", "/api/v3/order", LIMIT,
     {"raw_signature": b"\xe9" * 64}, 400, -1022, None),
    ("non-UTF-8 byte in a signed body", "POST", "/api/v3/order",
     _limit(newClientOrderId="caf\udce9"), {"raw_signature": None}, 400, -1100, None),
    ("non-ASCII symbol", "POST", "/api/v3/order", _limit(symbol="BTCUSDT\u00e9"), {}, 400,
     -1100, "Illegal characters found in parameter 'symbol'; legal range is "
     "'^[A-Z0-9-_.]{1,20}$'."),
]  # fmt: skip


class _Answer:
    """What the table reads of a response, for requests ``requests`` cannot send."""

    def __init__(self, status: int, data: bytes) -> None:
        self.status_code = status
        self.text = data.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.text)


def _raw(base_url: str, method: str, target: bytes, headers: list[tuple[str, str]],
         body: bytes) -> _Answer:  # fmt: skip
    """One HTTP/1.1 request as bytes: repeated header lines, and bytes that are not ASCII or
    not UTF-8 in the request line or the body, which HTTP clients refuse to send."""
    url = urlsplit(base_url)
    lines = [method.encode() + b" " + target + b" HTTP/1.1", f"Host: {url.netloc}".encode()]
    lines += [f"{name}: {value}".encode() for name, value in headers]
    if body:
        lines.append(b"Content-Type: application/x-www-form-urlencoded")
    lines += [f"Content-Length: {len(body)}".encode(), b"Connection: close"]
    with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), 30) as sock:
        sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\r\n\r\n")
    return _Answer(int(head.split(b" ", 2)[1]), payload)


def _payload(params: dict[str, Any], signed: bool) -> bytes:
    """Parameters as a client sends them, unencoded ("\\udcXX" stands for a byte that is not
    UTF-8), with a timestamp when ``signed``."""
    pairs = [f"{k}={v}" for k, v in params.items()]
    if signed:
        pairs.append(f"timestamp={now_ms()}")
    return "&".join(pairs).encode("utf-8", "surrogateescape")


def _hostile_raw(stack: ApiStack, traders: dict[str, Trader], method: str, path: str,
                 params: dict[str, Any], opts: dict[str, Any]) -> _Answer:  # fmt: skip
    """A request signed with Alice's secret (unless told otherwise) with the key header lines
    ``opts["keys"]`` names (Alice's alone by default), or a signature sent as the bytes
    ``opts["raw_signature"]`` (None: a valid signature over the bytes sent)."""
    signed = opts.pop("sign", True)
    payload = _payload(params, opts.pop("with_timestamp", signed))
    if "raw_signature" in opts:
        sig = opts.pop("raw_signature")
        if sig is None:
            key = traders["alice"].secret.encode()
            sig = hmac.new(key, payload, hashlib.sha256).hexdigest().encode()
        payload += b"&signature=" + sig
    elif signed:
        key = traders["alice"].secret.encode()
        payload += b"&signature=" + hmac.new(key, payload, hashlib.sha256).hexdigest().encode()
    keys = opts.pop("keys", [("X-MBX-APIKEY", "alice")])
    headers = [(name, traders[who].api_key) for name, who in keys]
    in_query = opts.pop("in_query", method != "POST")
    target = path.encode() + (b"?" + payload if in_query and payload else b"")
    return _raw(stack.base_url, method, target, headers, b"" if in_query else payload)


@pytest.fixture
def bob_order(stack: ApiStack, bob: Trader) -> Iterator[int]:
    """A resting order of Bob's, which Alice tries to query and cancel (cancelled after)."""
    client = stack.client(bob)
    order = _limit(side="SELL", price="90000", newClientOrderId="bobs-1")
    order_id = int(_ok(client.signed("POST", "/api/v3/order", order))["orderId"])
    yield order_id
    client.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": order_id})


@pytest.fixture(scope="module")
def hostile_setup(stack: ApiStack, alice: Trader) -> dict[str, Trader]:
    """A resting order for the duplicate-id case, and keys with restricted rights."""
    _ok(stack.client(alice).signed("POST", "/api/v3/order", _limit(newClientOrderId="resting-1")))
    return {
        "reader": stack.trader(1, {}, permissions=("USER_DATA",)),
        "trader_only": stack.trader(1, {}, permissions=("TRADE",)),
        "walled": stack.trader(1, {}, ip_allow_list=("10.0.0.0/8",)),
    }


def _state(client: Client) -> tuple[Any, Any]:
    return _balances(client), _ok(client.signed("GET", "/api/v3/openOrders"))


def test_hostile_requests(
    stack: ApiStack, alice: Trader, bob: Trader, hostile_setup: dict[str, Trader],
    bob_order: int,
) -> None:  # fmt: skip
    a, b = stack.client(alice), stack.client(bob)
    before = (_state(a), _state(b))
    failures = []
    for case_id, method, path, params, options, status, code, msg in CASES:
        opts = dict(options)
        client = stack.client(hostile_setup[opts.pop("trader")]) if "trader" in opts else a
        if opts.pop("bob_order", False):
            params = {**params, "orderId": bob_order}
        response: Any
        if "keys" in opts or "raw_signature" in opts:
            response = _hostile_raw(stack, {"alice": alice, "bob": bob}, method, path, params,
                                    opts)  # fmt: skip
        elif opts.pop("public", False):
            response = client.public(method, path, **params)
        elif opts.pop("duplicate", False):
            form = "&".join(f"{k}={v}" for k, v in params.items())
            response = client.session.post(
                f"{stack.base_url}{path}?symbol=BTCUSDT",
                data=form + f"&timestamp={now_ms()}",
                headers={"X-MBX-APIKEY": alice.api_key,
                         "Content-Type": "application/x-www-form-urlencoded"},
                timeout=30,
            )  # fmt: skip
        else:
            if "timestamp" in opts:
                opts["timestamp"] = now_ms() + opts["timestamp"]
            response = client.signed(method, path, params, **opts)
        try:
            body = response.json()
        except ValueError:
            body = {"raw": response.text}
        got = (response.status_code, body.get("code"))
        if got != (status, code) or (msg is not None and body.get("msg") != msg):
            failures.append(f"{case_id}: expected {status} {code} {msg!r}, got {got} {body}")
        if set(body) - {"code", "msg", "data"}:
            failures.append(f"{case_id}: not Binance's error shape: {body}")
    assert not failures, "\n".join(failures)
    assert len(CASES) >= 40
    assert (_state(a), _state(b)) == before


def test_no_reply_is_execution_status_unknown(
    local_stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Nobody consumes the commands: the order waits its reply timeout, then -1007 / 503."""
    s = ApiStack(local_stack, tmp_path_factory.mktemp("api-timeout"), TIMEOUT_REDIS_DB)
    s.env["BOURSE_API_REPLY_TIMEOUT_MS"] = "500"
    try:
        s.start(matching=False)
        # Listed in the live view, as Redis keeps it through a matching service outage (an
        # unlisted symbol is -1121 before anything is sent): only the reply never comes.
        spec = next(m for m in DEFAULT_MARKETS if m.symbol == LIMIT["symbol"])
        s.redis.hset(SYMBOLS_KEY, spec.symbol, encode_spec(spec))
        client = s.client(s.trader(1, {}))
        response = client.signed("POST", "/api/v3/order", LIMIT)
        assert response.status_code == 503
        assert response.json() == {
            "code": -1007,
            "msg": "Timeout waiting for response from backend server. "
            "Send status unknown; execution status unknown.",
        }
    finally:
        s.stop()
