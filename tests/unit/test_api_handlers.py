"""The REST handlers with in-memory fakes for the live view, the command bus and the keys:
response shapes, Binance codes and HTTP statuses, and the Powertools wiring."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from bourse.adapters.api_keys import ApiKey
from bourse.adapters.redis_book import Bbo, Book
from bourse.api import handlers as h
from bourse.api.app import build, query_string
from bourse.api.auth import Caller, Unauthorized, authorize
from bourse.api.routes import ACCOUNT, MARKET_DATA, ORDERS
from bourse.domain.commands import CancelReplace, Command, NewOrder
from bourse.domain.enums import OrderStatus, OrderType, Outcome, Side, StpMode, TimeInForce
from bourse.domain.errors import BinanceError
from bourse.domain.events import Fill, OrderInfo, OrderResult, Reply, ReplyPart
from bourse.domain.markets import DEFAULT_MARKETS

pytestmark = pytest.mark.unit

CONTEXT = LambdaContext()  # the resolver reads nothing of the Lambda context

NOW = 1_700_000_000_000
SECRET = "s" * 64
KEY = "k" * 64


class FakeView:
    def __init__(self) -> None:
        self.specs = {s.symbol: s for s in DEFAULT_MARKETS}
        self.books: dict[str, Book] = {}
        self.bbos: dict[str, Bbo] = {}
        self.prices: dict[str, int] = {}
        self.bal: dict[int, dict[str, tuple[int, int]]] = {7: {"BTC": (150_000_000, 50_000_000)}}
        self.fee: dict[int, tuple[int, int]] = {}
        self.orders: dict[int, list[OrderResult]] = {}

    def symbols(self) -> dict[str, Any]:
        return dict(sorted(self.specs.items()))

    def symbol(self, name: str) -> Any:
        return self.specs.get(name)

    def is_listed(self, name: str) -> bool:
        return name in self.specs

    def book(self, symbol: str, limit: int) -> Book | None:
        return self.books.get(symbol)

    def bbo(self, symbol: str) -> Bbo | None:
        return self.bbos.get(symbol)

    def last_price(self, symbol: str) -> int | None:
        return self.prices.get(symbol)

    def balances(self, account_id: int) -> dict[str, tuple[int, int]]:
        return self.bal.get(account_id, {})

    def fees(self, account_id: int) -> tuple[int, int] | None:
        return self.fee.get(account_id)

    def open_orders(self, account_id: int, symbol: str | None) -> list[OrderResult]:
        return [o for o in self.orders.get(account_id, []) if symbol in (None, o.order.symbol)]


class FakeBus:
    """``answer``: the reply to every command, or a function of the command giving it.
    ``wait`` (the reply of a command sent by a request that timed out) is set by the tests of
    retries."""

    def __init__(self, answer: Callable[[Command], Reply | None] | Reply | None = None) -> None:
        self.sent: list[Command] = []
        self.answer = answer
        self.wait: Callable[[str], Reply | None] = self._no_wait

    def execute(self, command: Command) -> Reply | None:
        self.sent.append(command)
        return self.answer(command) if callable(self.answer) else self.answer

    def _no_wait(self, request_id: str) -> Reply | None:
        raise AssertionError(f"FakeBus.wait({request_id!r}) called; this test did not set it")


class FakeIdempotency:
    def __init__(self) -> None:
        self.items: dict[str, list[Any]] = {}

    def claim(self, key: str, request_id: str) -> Any:
        if key not in self.items:
            self.items[key] = [request_id, None, None]
            return None
        rid, status, body = self.items[key]
        return type("Claim", (), {"request_id": rid, "status": status, "body": body})()

    def reclaim(self, key: str, old_request_id: str, request_id: str) -> Any:
        if key in self.items and self.items[key][0] != old_request_id:
            return self.claim(key, request_id)
        self.items[key] = [request_id, None, None]
        return None

    def complete(self, key: str, status: int, body: str) -> None:
        self.items[key][1:] = [status, body]


class FakeKeys:
    def __init__(self) -> None:
        self.keys = {KEY: ApiKey(KEY, SECRET, 7)}

    def get(self, api_key: str) -> ApiKey | None:
        return self.keys.get(api_key)


def deps(bus: FakeBus | None = None, view: FakeView | None = None) -> h.Deps:
    return h.Deps(view or FakeView(), bus or FakeBus(), FakeKeys(), lambda: NOW,
                  lambda: "req-1")  # fmt: skip


def signed_request(params: dict[str, Any], *, body: bool = False, perms: str = "TRADE,USER_DATA",
                   secret: str = SECRET) -> h.Request:  # fmt: skip
    payload = urlencode({**params, "timestamp": NOW - 10})
    payload += "&signature=" + hmac.new(secret.encode(), payload.encode(),
                                        hashlib.sha256).hexdigest()  # fmt: skip
    caller = Caller(7, frozenset(perms.split(",")), KEY)
    return h.Request("", payload, caller) if body else h.Request(payload, "", caller)


def result(status: OrderStatus = OrderStatus.FILLED, **kw: Any) -> OrderResult:
    info = OrderInfo(3, 7, "BTCUSDT", "cid", Side.BUY, OrderType.LIMIT, TimeInForce.GTC,
                     1_000_000, 3_000_000_000_000, 0, 0, 0, StpMode.EXPIRE_MAKER, NOW)  # fmt: skip
    fills = (Fill(3_000_000_000_000, 1_000_000, 1_000, "BTC", 9),)
    return OrderResult(info, status, 1_000_000, 30_000_000_000, NOW, fills, **kw)


def ok_reply(command: Command, *parts: ReplyPart) -> Reply:
    return Reply(1, command.ts, command.request_id, "NEW_ORDER", 0, "", parts)


DUPLICATE = "Duplicate order sent."
LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.01", "price": "30000"}  # fmt: skip


def test_new_order_full_and_command() -> None:
    bus = FakeBus(lambda c: ok_reply(c, ReplyPart(Outcome.SUCCESS, 0, "", result())))
    body = h.new_order(signed_request(LIMIT, body=True), deps(bus))
    (sent,) = bus.sent
    assert isinstance(sent, NewOrder) and sent.account_id == 7 and sent.ts == NOW
    assert sent.request_id == "req-1" and sent.price == 3_000_000_000_000
    assert body["status"] == "FILLED" and body["transactTime"] == NOW
    assert body["fills"] == [{"price": "30000.00000000", "qty": "0.01000000",
                              "commission": "0.00001000", "commissionAsset": "BTC",
                              "tradeId": 9}]  # fmt: skip


@pytest.mark.parametrize(
    ("bus", "code", "status"),
    [
        (FakeBus(None), -1007, 503),
        (
            FakeBus(lambda c: Reply(1, 0, c.request_id, "NEW_ORDER", -2010, DUPLICATE, ())),
            -2010,
            400,
        ),
    ],
)
def test_new_order_timeout_and_reject(bus: FakeBus, code: int, status: int) -> None:
    with pytest.raises(BinanceError) as exc:
        h.new_order(signed_request(LIMIT, body=True), deps(bus))
    assert (exc.value.code, exc.value.http_status) == (code, status)


@pytest.mark.parametrize(
    ("request_", "code", "status"),
    [
        (signed_request(LIMIT, perms="USER_DATA"), -2015, 401),
        (signed_request(LIMIT, secret="t" * 64), -1022, 400),
        (h.Request("symbol=BTCUSDT", "", None), -2014, 401),
    ],
)
def test_signed_checks(request_: h.Request, code: int, status: int) -> None:
    bus = FakeBus()
    with pytest.raises(BinanceError) as exc:
        h.new_order(request_, deps(bus))
    assert (exc.value.code, exc.value.http_status) == (code, status)
    assert bus.sent == []  # nothing reached the engine


def test_exchange_info_and_depth() -> None:
    d = deps()
    info = h.exchange_info(h.Request('symbols=["ETHBTC","BTCUSDT"]', ""), d)
    assert [s["symbol"] for s in info["symbols"]] == ["ETHBTC", "BTCUSDT"]
    pct = next(f for f in info["symbols"][0]["filters"] if f["filterType"] == "PERCENT_PRICE")
    assert (pct["multiplierUp"], pct["multiplierDown"]) == ("5", "0.2")
    with pytest.raises(BinanceError) as exc:
        h.exchange_info(h.Request("symbol=NOPE", ""), d)
    assert exc.value.code == -1121
    view = FakeView()
    view.books["BTCUSDT"] = Book(42, 9, [(3_000_000_000_000, 5)] * 6000, [])
    body = h.depth(h.Request("symbol=BTCUSDT&limit=9999", ""), deps(view=view))
    assert body["lastUpdateId"] == 42 and len(body["bids"]) == 5000
    assert body["bids"][0] == ["30000.00000000", "0.00000005"]
    assert len(h.depth(h.Request("symbol=BTCUSDT", ""), deps(view=view))["bids"]) == 100
    with pytest.raises(BinanceError) as exc:
        h.depth(h.Request("symbol=BTCUSDT&limit=-1", ""), deps(view=view))
    assert exc.value.code == -1100


def test_account_and_open_orders() -> None:
    view = FakeView()
    view.fee[7] = (20_000, 40_000)
    view.orders[7] = [result(OrderStatus.NEW)]
    d = deps(view=view)
    body = h.account_info(signed_request({}), d)
    assert body["balances"] == [{"asset": "BTC", "free": "1.50000000", "locked": "0.50000000"}]
    assert (body["makerCommission"], body["takerCommission"]) == (2, 4)
    assert body["commissionRates"]["taker"] == "0.00040000" and body["canTrade"] is True
    (order,) = h.open_orders(signed_request({"symbol": "BTCUSDT"}), d)
    assert order["orderId"] == 3 and order["status"] == "NEW" and order["isWorking"] is True
    assert h.query_order(signed_request({"symbol": "BTCUSDT", "origClientOrderId": "cid"}),
                         d)["orderId"] == 3  # fmt: skip
    with pytest.raises(BinanceError) as exc:
        h.query_order(signed_request({"symbol": "BTCUSDT", "orderId": 4}), d)
    assert exc.value.code == -2013


def test_cancel_replace_failure_carries_both_results() -> None:
    def answer(c: Command) -> Reply:
        assert isinstance(c, CancelReplace)
        parts = (ReplyPart(Outcome.FAILURE, -2011, "Unknown order sent.", None),
                 ReplyPart(Outcome.NOT_ATTEMPTED, 0, "", None))  # fmt: skip
        return Reply(1, c.ts, c.request_id, "CANCEL_REPLACE", -2022,
                     "Order cancel-replace failed.", parts)  # fmt: skip

    params = {**LIMIT, "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrderId": "5"}
    with pytest.raises(h.CancelReplaceFailed) as exc:
        h.cancel_replace(signed_request(params, body=True), deps(FakeBus(answer)))
    assert exc.value.body() == {
        "code": -2022,
        "msg": "Order cancel-replace failed.",
        "data": {"cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                 "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
                 "newOrderResponse": None},
    }  # fmt: skip


def test_authorizer() -> None:
    arn = "arn:aws:execute-api:us-east-1:1:api/prod/GET/api/v3/account"
    event = {"headers": {"X-MBX-APIKEY": KEY}, "methodArn": arn,
             "requestContext": {"identity": {"sourceIp": "10.1.2.3"}}}  # fmt: skip
    keys = FakeKeys()
    allow = authorize(event, keys)
    assert allow["principalId"] == "7"
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    assert allow["context"] == {"accountId": 7, "permissions": "TRADE,USER_DATA",
                                "apiKeyDigest": digest}  # fmt: skip
    assert allow["policyDocument"]["Statement"][0]["Resource"] == (
        "arn:aws:execute-api:us-east-1:1:api/prod/*"
    )
    keys.keys[KEY] = ApiKey(KEY, SECRET, 7, ip_allow_list=("192.168.0.0/16",))
    assert authorize(event, keys)["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    keys.keys[KEY] = ApiKey(KEY, SECRET, 7, ip_allow_list=("10.0.0.0/8",))
    assert "context" in authorize(event, keys)
    unknown = {**event, "headers": {"x-mbx-apikey": "Z" * 64}}
    assert authorize(unknown, keys)["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    for bad in ({}, {"X-MBX-APIKEY": ""}, {"X-MBX-APIKEY": "bad key"}):
        with pytest.raises(Unauthorized):
            authorize({**event, "headers": bad}, keys)


def _proxy_event(method: str, path: str, query: dict[str, list[str]] | None = None,
                 body: str | None = None) -> dict[str, Any]:  # fmt: skip
    return {"resource": path, "path": path, "httpMethod": method, "headers": {},
            "multiValueHeaders": {}, "queryStringParameters": None,
            "multiValueQueryStringParameters": query, "requestContext": {"requestId": "r"},
            "body": body, "isBase64Encoded": False}  # fmt: skip


def test_resolver_wiring() -> None:
    view = FakeView()
    app = build(MARKET_DATA, lambda: deps(view=view))
    ok = app.resolve(_proxy_event("GET", "/api/v3/ping"), CONTEXT)
    assert (ok["statusCode"], ok["body"]) == (200, "{}")
    bad = app.resolve(_proxy_event("GET", "/api/v3/depth", {"symbol": ["NOPE"]}), CONTEXT)
    assert bad["statusCode"] == 400
    assert json.loads(bad["body"]) == {"code": -1121, "msg": "Invalid symbol."}
    missing = app.resolve(_proxy_event("GET", "/api/v3/nothing"), CONTEXT)
    assert (missing["statusCode"], json.loads(missing["body"])["code"]) == (404, -1000)

    def broken() -> h.Deps:
        raise ConnectionError("redis is down")

    failing = build(MARKET_DATA, broken).resolve(
        _proxy_event("GET", "/api/v3/time"), LambdaContext()
    )
    assert (failing["statusCode"], json.loads(failing["body"])["code"]) == (500, -1001)


def test_query_string_is_rebuilt_in_order() -> None:
    event = {"multiValueQueryStringParameters": {"symbol": ["BTCUSDT"], "x": ["a b", "c"]}}
    assert query_string(event) == "symbol=BTCUSDT&x=a+b&x=c"
    assert query_string({"queryStringParameters": {"a": "1"}}) == "a=1"
    assert query_string({}) == ""


def test_route_tables_do_not_overlap() -> None:
    seen = [(r.method, r.path) for r in MARKET_DATA + ORDERS + ACCOUNT]
    assert len(seen) == len(set(seen))


def test_tickers() -> None:
    view = FakeView()
    view.prices["BTCUSDT"] = 3_000_012_000_000
    view.bbos["BTCUSDT"] = Bbo(5, 2_999_900_000_000, 10_000_000, 3_000_100_000_000, 20_000_000)
    d = deps(view=view)
    assert h.ticker_price(h.Request("symbol=BTCUSDT", ""), d) == {
        "symbol": "BTCUSDT",
        "price": "30000.12000000",
    }
    rows = h.ticker_price(h.Request("", ""), d)
    assert rows == [
        {"symbol": "BTCUSDT", "price": "30000.12000000"},
        {"symbol": "ETHBTC", "price": "0.00000000"},
        {"symbol": "ETHUSDT", "price": "0.00000000"},
    ]
    assert h.book_ticker(h.Request('symbols=["BTCUSDT"]', ""), d) == [
        {"symbol": "BTCUSDT", "bidPrice": "29999.00000000", "bidQty": "0.10000000",
         "askPrice": "30001.00000000", "askQty": "0.20000000"}
    ]  # fmt: skip
    for query, code in (("symbol=NOPE", -1121), ("symbol=BTCUSDT&symbols=[]", -1128),
                        ("symbols=BTCUSDT", -1100), ("symbolStatus=OPEN", -1130)):  # fmt: skip
        with pytest.raises(BinanceError) as exc:
            h.book_ticker(h.Request(query, ""), d)
        assert exc.value.code == code, query


def test_client_order_id_retries_are_idempotent() -> None:
    store = FakeIdempotency()
    replies: dict[str, Reply] = {}

    resting = result(OrderStatus.NEW)  # open: retries replay its answer (closed: see
    view = FakeView()  # tests/unit/test_client_order_id_reuse.py)
    view.orders[7] = [resting]

    def answer(c: Command) -> Reply | None:
        reply = ok_reply(c, ReplyPart(Outcome.SUCCESS, 0, "", resting))
        replies[c.request_id] = reply
        return None if len(replies) == 1 else reply  # the first attempt times out

    bus = FakeBus(answer)
    bus.wait = lambda request_id: replies.get(request_id)
    ids = iter(f"r{i}" for i in range(100))
    d = h.Deps(view, bus, FakeKeys(), lambda: NOW, lambda: next(ids), store)
    params = {**LIMIT, "newClientOrderId": "mine-1"}
    with pytest.raises(BinanceError) as exc:
        h.new_order(signed_request(params, body=True), d)
    assert exc.value.code == -1007
    # The retry sends nothing: it waits for the first command's reply, then stores it.
    first = h.new_order(signed_request(params, body=True), d)
    assert len(bus.sent) == 1 and first["orderId"] == 3
    assert h.new_order(signed_request(params, body=True), d) == first
    assert len(bus.sent) == 1
    # Another order with the same client id (different parameters) is a new order.
    h.new_order(signed_request({**params, "price": "30001"}, body=True), d)
    assert len(bus.sent) == 2
    # Without a client id there is nothing to key on.
    h.new_order(signed_request(LIMIT, body=True), d)
    assert len(bus.sent) == 3
