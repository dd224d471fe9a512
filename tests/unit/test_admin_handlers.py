"""The admin API's handlers (bourse.admin) with in-memory fakes of their ports: what each route
sends to the engine (command, principal), what it answers, and its Binance-style refusals.
The resolver is exercised with API Gateway proxy events as the AWS_IAM gateway sends them."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from bourse.admin import handlers as h
from bourse.admin.app import build
from bourse.admin.handlers import AdminRequest
from bourse.admin.ports import AdminDeps, KeyRecord
from bourse.domain import commands as c
from bourse.domain import errors
from bourse.domain.enums import SymbolStatus
from bourse.domain.errors import BinanceError
from bourse.domain.events import Reply
from bourse.domain.symbols import SymbolSpec

pytestmark = pytest.mark.unit

OPERATOR = "arn:aws:iam::123456789012:user/alice"
CONTEXT: Any = None  # the resolver reads nothing of the Lambda context
BTC = SymbolSpec("BTCUSDT", "BTC", "USDT", 1_000_000, 1_000_000, 10**14, 100_000, 100_000, 10**12)


@dataclass
class FakeBus:
    sent: list[c.Command] = field(default_factory=list)
    # command -> (code, msg, detail); None: the engine does not answer
    answer: Callable[[c.Command], tuple[int, str, str] | None] = lambda cmd: (0, "", "")

    def execute(self, command: c.Command) -> Reply | None:
        self.sent.append(command)
        got = self.answer(command)
        if got is None:
            return None
        code, msg, detail = got
        return Reply(len(self.sent), command.ts, command.request_id, "X", code, msg, (), detail)


@dataclass
class FakeView:
    markets: dict[str, SymbolSpec] = field(default_factory=lambda: {"BTCUSDT": BTC})
    statuses: dict[int, str] = field(default_factory=lambda: {7: "ACTIVE"})
    holdings: dict[int, dict[str, tuple[int, int]]] = field(default_factory=dict)
    rates: dict[int, tuple[int, int]] = field(default_factory=dict)

    def symbols(self) -> dict[str, SymbolSpec]:
        return dict(self.markets)

    def symbol(self, name: str) -> SymbolSpec | None:
        return self.markets.get(name)

    def accounts(self) -> dict[int, str]:
        return dict(self.statuses)

    def account_status(self, account_id: int) -> str | None:
        return self.statuses.get(account_id)

    def balances(self, account_id: int) -> dict[str, tuple[int, int]]:
        return self.holdings.get(account_id, {})

    def fees(self, account_id: int) -> tuple[int, int] | None:
        return self.rates.get(account_id)


@dataclass(frozen=True)
class Key:
    api_key: str
    account_id: int
    permissions: tuple[str, ...]
    ip_allow_list: tuple[str, ...]
    label: str
    key_type: str
    status: str
    created_at_ms: int


@dataclass
class FakeKeys:
    keys: dict[str, Key] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)
    counter: int = 0

    def create(
        self,
        account_id: int,
        key_type: str,
        permissions: tuple[str, ...],
        ip_allow_list: tuple[str, ...],
        label: str,
        public_key_pem: str | None,
        created_at_ms: int,
    ) -> tuple[KeyRecord, str | None]:
        if key_type == "ED25519" and not public_key_pem:
            raise ValueError("an ED25519 key needs its public key (PEM)")
        self.counter += 1
        key = Key(f"key{self.counter}", account_id, permissions, ip_allow_list, label, key_type,
                  "ACTIVE", created_at_ms)  # fmt: skip
        self.keys[key.api_key] = key
        return key, (f"secret{self.counter}" if key_type == "HMAC" else None)

    def list(self, account_id: int) -> Sequence[KeyRecord]:
        return [k for k in self.keys.values() if k.account_id == account_id]

    def describe(self, api_key: str) -> KeyRecord | None:
        return self.keys.get(api_key)

    def revoke(self, api_key: str) -> KeyRecord | None:
        if api_key not in self.keys:
            return None
        self.keys[api_key] = replace(self.keys[api_key], status="REVOKED")
        return self.keys[api_key]

    def close_sessions(self, api_key: str, account_id: int) -> int:
        self.closed.append(api_key)
        return 1


@dataclass
class World:
    bus: FakeBus = field(default_factory=FakeBus)
    view: FakeView = field(default_factory=FakeView)
    keys: FakeKeys = field(default_factory=FakeKeys)
    funding_calls: list[tuple[int | None, int]] = field(default_factory=list)

    def deps(self) -> AdminDeps:
        ids = iter(f"r{i}" for i in range(1, 1000))

        def funding(account_id: int | None, limit: int) -> list[dict[str, Any]]:
            self.funding_calls.append((account_id, limit))
            return [{"fundingId": "t1", "kind": "DEPOSIT"}]

        return AdminDeps(self.bus, self.view, self.keys, funding, lambda: 1_700_000_000_000,
                         lambda: next(ids))  # fmt: skip


def req(body: Any = None, principal: str = OPERATOR, **path: str) -> AdminRequest:
    text = body if isinstance(body, str) or body is None else json.dumps(body)
    return AdminRequest(principal=principal, path=path, query={}, body=text)


def refused(call: Callable[[], Any]) -> BinanceError:
    with pytest.raises(BinanceError) as info:
        call()
    return info.value


MARKET = {"symbol": "ethusdt", "baseAsset": "ETH", "quoteAsset": "USDT", "tickSize": "0.01",
          "minPrice": "0.01", "maxPrice": "100000", "stepSize": "0.0001", "minQty": "0.0001",
          "maxQty": "9000"}  # fmt: skip


# ---------------------------------------------------------------------------------- markets


def test_list_and_add_markets() -> None:
    w = World()
    listed = h.list_markets(req(), w.deps())["markets"]
    assert listed[0]["symbol"] == "BTCUSDT" and listed[0]["tickSize"] == "0.01000000"
    assert listed[0]["makerCommission"] == "0.00100000" and listed[0]["status"] == "TRADING"
    answer = h.add_market(req({**MARKET, "makerCommission": "0.0002"}), w.deps())
    (sent,) = w.bus.sent
    assert isinstance(sent, c.AddSymbol) and sent.principal == OPERATOR
    assert sent.spec.symbol == "ETHUSDT" and sent.spec.maker_commission == 20_000
    assert sent.spec.taker_commission == 100_000 and sent.spec.min_notional == 0
    assert answer["symbol"] == "ETHUSDT" and answer["makerCommission"] == "0.00020000"
    assert set(answer) == {"symbol", "baseAsset", "quoteAsset", "status", "tickSize", "minPrice",
                           "maxPrice", "stepSize", "minQty", "maxQty", "minNotional",
                           "makerCommission", "takerCommission", "bidMultiplierUp",
                           "bidMultiplierDown", "askMultiplierUp", "askMultiplierDown",
                           "minTrailingAboveDelta", "maxTrailingAboveDelta",
                           "minTrailingBelowDelta", "maxTrailingBelowDelta"}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**MARKET, "tickSize": None}, errors.MANDATORY_PARAM_EMPTY_OR_MALFORMED),
        ({**MARKET, "colour": "red"}, errors.UNKNOWN_PARAM),
        ({**MARKET, "tickSize": "0.000000001"}, errors.BAD_PRECISION),
        ({**MARKET, "tickSize": 0.01}, errors.INVALID_PARAMETER),  # numbers lose digits
        ({**MARKET, "minPrice": "0.001"}, errors.INVALID_PARAMETER),  # below one tick
        ({**MARKET, "makerCommission": "1.5"}, errors.INVALID_PARAMETER),
        ({**MARKET, "symbol": "ETH-USDT"}, errors.ILLEGAL_CHARS),
        ("[1, 2]", errors.INVALID_PARAMETER),
        ("{not json", errors.INVALID_PARAMETER),
    ],
)  # fmt: skip
def test_add_market_refusals(body: Any, code: int) -> None:
    w = World()
    error = refused(lambda: h.add_market(req(body), w.deps()))
    assert error.code == code and error.http_status == 400 and not w.bus.sent


def test_update_keeps_the_status_and_unknown_markets_are_404() -> None:
    w = World()
    w.view.markets["BTCUSDT"] = BTC.with_status(SymbolStatus.HALT)
    answer = h.update_market(req({"takerCommission": "0.002"}, symbol="btcusdt"), w.deps())
    (sent,) = w.bus.sent
    assert isinstance(sent, c.UpdateSymbol) and sent.spec.taker_commission == 200_000
    assert sent.spec.tick_size == BTC.tick_size
    assert answer["status"] == "HALT" and answer["takerCommission"] == "0.00200000"
    assert refused(lambda: h.update_market(req({}, symbol="BTCUSDT"), w.deps())).code == (
        errors.PARAM_EMPTY
    )
    missing = refused(lambda: h.update_market(req({"minQty": "1"}, symbol="XYZUSDT"), w.deps()))
    assert (missing.code, missing.http_status) == (errors.BAD_SYMBOL, 404)


def test_halt_resume_delist() -> None:
    w = World()
    assert h.halt_market(req(symbol="BTCUSDT"), w.deps())["status"] == "HALT"
    assert h.resume_market(req(symbol="BTCUSDT"), w.deps())["status"] == "TRADING"
    assert h.delist_market(req(symbol="BTCUSDT"), w.deps())["status"] == "BREAK"
    halt, resume, delist = w.bus.sent
    assert isinstance(halt, c.SetSymbolStatus) and halt.status == SymbolStatus.HALT
    assert isinstance(resume, c.SetSymbolStatus) and resume.status == SymbolStatus.TRADING
    assert isinstance(delist, c.DelistSymbol) and delist.symbol == "BTCUSDT"
    # The engine's refusal comes back as it is.
    w.bus.answer = lambda cmd: (errors.INVALID_PARAMETER, errors.SYMBOL_DELISTED_ERROR.msg, "")
    error = refused(lambda: h.halt_market(req(symbol="BTCUSDT"), w.deps()))
    assert (error.code, error.msg, error.http_status) == (
        errors.INVALID_PARAMETER, errors.SYMBOL_DELISTED_ERROR.msg, 400
    )  # fmt: skip
    assert refused(lambda: h.halt_market(req({"x": 1}, symbol="BTCUSDT"), w.deps())).code == (
        errors.UNKNOWN_PARAM
    )


# ---------------------------------------------------------------------------------- accounts


def test_accounts() -> None:
    w = World()
    w.bus.answer = lambda cmd: (0, "", '{"accountId":8}')
    assert h.create_account(req({}), w.deps()) == {"accountId": 8, "status": "ACTIVE"}
    assert h.create_account(req({"accountId": 9}), w.deps())["accountId"] == 8
    first, second = w.bus.sent
    assert isinstance(first, c.CreateAccount) and first.account_id == 0
    assert isinstance(second, c.CreateAccount) and second.account_id == 9
    assert refused(lambda: h.create_account(req({"accountId": "x"}), w.deps())).code == (
        errors.INVALID_PARAMETER
    )
    w.view.statuses = {7: "ACTIVE", 3: "FROZEN"}
    assert h.list_accounts(req(), w.deps()) == {
        "accounts": [{"accountId": 3, "status": "FROZEN"}, {"accountId": 7, "status": "ACTIVE"}]
    }


def test_account_detail() -> None:
    w = World()
    w.view.holdings[7] = {"USDT": (150_000_000, 50_000_000)}
    w.keys.create(7, "HMAC", ("USER_DATA",), (), "bot", None, 5)
    detail = h.get_account(req(accountId="7"), w.deps())
    assert detail["balances"] == [{"asset": "USDT", "free": "1.50000000", "locked": "0.50000000"}]
    assert detail["makerCommission"] is None and detail["takerCommission"] is None
    assert detail["keys"][0]["permissions"] == ["READ"] and "secret" not in detail["keys"][0]
    w.view.rates[7] = (0, 50_000)
    detail = h.get_account(req(accountId="7"), w.deps())
    assert (detail["makerCommission"], detail["takerCommission"]) == ("0.00000000", "0.00050000")
    for bad in ("8", "abc", "0"):
        with pytest.raises(BinanceError) as info:
            h.get_account(req(accountId=bad), w.deps())
        assert info.value.http_status == 404


def test_freeze_and_fees() -> None:
    w = World()
    w.bus.answer = lambda cmd: (0, "", '{"accountId":7,"status":"FROZEN"}')
    assert h.freeze_account(req(accountId="7"), w.deps()) == {"accountId": 7, "status": "FROZEN"}
    (sent,) = w.bus.sent
    assert isinstance(sent, c.SetAccountStatus) and sent.frozen and sent.account_id == 7
    w.bus.answer = lambda cmd: (0, "", "")
    h.unfreeze_account(req(accountId="7"), w.deps())
    assert isinstance(w.bus.sent[-1], c.SetAccountStatus) and not w.bus.sent[-1].frozen
    answer = h.set_account_fees(
        req({"makerCommission": "0.0001", "takerCommission": "0.001"}, accountId="7"), w.deps()
    )
    fees = w.bus.sent[-1]
    assert isinstance(fees, c.SetAccountFees) and (fees.maker_rate, fees.taker_rate) == (
        10_000, 100_000
    )  # fmt: skip
    assert answer == {"accountId": 7, "status": "ACTIVE", "makerCommission": "0.00010000",
                      "takerCommission": "0.00100000"}  # fmt: skip
    error = refused(lambda: h.set_account_fees(req({"makerCommission": "0.1"}, accountId="7"),
                                               w.deps()))  # fmt: skip
    assert error.code == errors.MANDATORY_PARAM_EMPTY_OR_MALFORMED
    # An account the engine does not know: 404, whatever the route.
    w.bus.answer = lambda cmd: (errors.INVALID_PARAMETER, errors.UNKNOWN_ACCOUNT_ERROR.msg, "")
    assert refused(lambda: h.freeze_account(req(accountId="99"), w.deps())).http_status == 404


# ---------------------------------------------------------------------------------- keys


def test_create_and_list_keys() -> None:
    w = World()
    body = {"type": "HMAC", "permissions": ["READ", "TRADE"], "ipAllowList": ["10.0.0.0/8"],
            "label": "bot"}  # fmt: skip
    key = h.create_key(req(body, accountId="7"), w.deps())
    assert key["secret"] == "secret1" and key["status"] == "ACTIVE" and key["accountId"] == 7
    assert key["permissions"] == ["READ", "TRADE"] and key["ipAllowList"] == ["10.0.0.0/8"]
    assert w.keys.keys[key["apiKey"]].permissions == ("USER_DATA", "TRADE")
    (sent,) = w.bus.sent
    assert isinstance(sent, c.KeyChange) and (sent.action, sent.api_key, sent.account_id) == (
        "CREATED", key["apiKey"], 7
    )  # fmt: skip
    listed = h.list_keys(req(accountId="7"), w.deps())["keys"]
    assert [k["apiKey"] for k in listed] == [key["apiKey"]] and "secret" not in listed[0]
    assert refused(lambda: h.create_key(req({**body, "permissions": ["ADMIN"]}, accountId="7"),
                                        w.deps())).code == errors.INVALID_PARAMETER  # fmt: skip
    assert refused(lambda: h.create_key(req({"type": "ED25519", "permissions": ["TRADE"]},
                                            accountId="7"), w.deps())).code == (
        errors.INVALID_PARAMETER
    )  # fmt: skip
    # Unknown account: 404 before any key is written.
    assert refused(lambda: h.create_key(req(body, accountId="8"), w.deps())).http_status == 404
    assert len(w.keys.keys) == 1


def test_a_key_the_engine_did_not_record_is_revoked_again() -> None:
    w = World()
    w.bus.answer = lambda cmd: None
    error = refused(lambda: h.create_key(req({"permissions": ["TRADE"]}, accountId="7"),
                                         w.deps()))  # fmt: skip
    assert (error.code, error.http_status) == (errors.TIMEOUT, 503)
    (key,) = w.keys.keys.values()
    assert key.status == "REVOKED"


def test_revoke_and_rotate() -> None:
    w = World()
    first = h.create_key(req({"permissions": ["TRADE"], "label": "x"}, accountId="7"), w.deps())
    rotated = h.rotate_key(req({}, apiKey=first["apiKey"]), w.deps())
    assert rotated["apiKey"] != first["apiKey"] and rotated["secret"] == "secret2"
    assert (rotated["permissions"], rotated["label"]) == (["TRADE"], "x")
    assert w.keys.keys[first["apiKey"]].status == "REVOKED" and w.keys.closed == [first["apiKey"]]
    actions = [(cmd.action, cmd.api_key) for cmd in w.bus.sent if isinstance(cmd, c.KeyChange)]
    assert actions == [("CREATED", first["apiKey"]), ("CREATED", rotated["apiKey"]),
                       ("ROTATED", first["apiKey"])]  # fmt: skip
    # A revoked key cannot be rotated; revoking is recorded once, and is idempotent.
    assert refused(lambda: h.rotate_key(req({}, apiKey=first["apiKey"]), w.deps())).code == (
        errors.INVALID_PARAMETER
    )
    revoked = h.revoke_key(req(apiKey=rotated["apiKey"]), w.deps())
    assert revoked["status"] == "REVOKED" and "secret" not in revoked
    assert w.keys.closed[-1] == rotated["apiKey"]
    count = len(w.bus.sent)
    assert h.revoke_key(req(apiKey=rotated["apiKey"]), w.deps())["status"] == "REVOKED"
    assert len(w.bus.sent) == count
    assert refused(lambda: h.revoke_key(req(apiKey="nope"), w.deps())).http_status == 404
    assert refused(lambda: h.revoke_key(req(apiKey="bad/key"), w.deps())).http_status == 404


# ---------------------------------------------------------------------------------- funding


def test_deposit() -> None:
    w = World()
    body = {"accountId": 7, "asset": "usdt", "amount": "100.5", "txId": "0xabc"}
    answer = h.deposit(req(body), w.deps())
    assert answer == {"txId": "0xabc", "accountId": 7, "asset": "USDT", "amount": "100.50000000",
                      "status": "CREDITED", "duplicate": False}  # fmt: skip
    (sent,) = w.bus.sent
    assert isinstance(sent, c.Deposit) and (sent.amount, sent.tx_id, sent.principal) == (
        10_050_000_000, "0xabc", OPERATOR
    )  # fmt: skip
    w.bus.answer = lambda cmd: (0, "", '{"duplicate":true}')
    assert h.deposit(req(body), w.deps())["duplicate"] is True
    for bad in ({**body, "amount": "0"}, {**body, "amount": "-1"}, {**body, "txId": "a b"},
                {k: v for k, v in body.items() if k != "txId"}):  # fmt: skip
        with pytest.raises(BinanceError) as info:
            h.deposit(req(bad), w.deps())
        assert info.value.http_status == 400


def test_withdrawals() -> None:
    w = World()
    w.bus.answer = lambda cmd: (0, "", '{"withdrawalId":"w1","status":"REQUESTED"}')
    answer = h.request_withdrawal(req({"accountId": 7, "asset": "BTC", "amount": "1"}), w.deps())
    assert answer["withdrawalId"].startswith("w") and answer["status"] == "REQUESTED"
    assert answer["amount"] == "1.00000000"
    named = h.request_withdrawal(
        req({"accountId": 7, "asset": "BTC", "amount": "1", "withdrawalId": "payout-1"}), w.deps()
    )
    assert named["withdrawalId"] == "payout-1"
    w.bus.answer = lambda cmd: (
        0, "", '{"withdrawalId":"payout-1","status":"COMPLETED","accountId":7,"asset":"BTC",'
        '"amount":100000000}'
    )  # fmt: skip
    done = h.complete_withdrawal(req(withdrawalId="payout-1"), w.deps())
    assert done == {"withdrawalId": "payout-1", "accountId": 7, "asset": "BTC",
                    "amount": "1.00000000", "status": "COMPLETED"}  # fmt: skip
    settle = w.bus.sent[-1]
    assert isinstance(settle, c.WithdrawSettle) and settle.outcome == "COMPLETED"
    w.bus.answer = lambda cmd: (0, "", "")
    h.fail_withdrawal(req(withdrawalId="payout-1"), w.deps())
    h.cancel_withdrawal(req(withdrawalId="payout-1"), w.deps())
    outcomes = [cmd.outcome for cmd in w.bus.sent if isinstance(cmd, c.WithdrawSettle)]
    assert outcomes == ["COMPLETED", "FAILED", "CANCELED"]
    w.bus.answer = lambda cmd: (errors.INVALID_PARAMETER, errors.UNKNOWN_WITHDRAWAL_ERROR.msg, "")
    assert refused(lambda: h.fail_withdrawal(req(withdrawalId="zz"), w.deps())).http_status == 404


def test_funding_history() -> None:
    w = World()
    assert h.funding_history(AdminRequest(OPERATOR, {}, {}), w.deps()) == {
        "funding": [{"fundingId": "t1", "kind": "DEPOSIT"}]
    }
    h.funding_history(AdminRequest(OPERATOR, {}, {"accountId": "7", "limit": "5"}), w.deps())
    assert w.funding_calls == [(None, 100), (7, 5)]
    for query in ({"limit": "0"}, {"limit": "1001"}, {"accountId": "x"}, {"other": "1"}):
        with pytest.raises(BinanceError) as info:
            h.funding_history(AdminRequest(OPERATOR, {}, query), w.deps())
        assert info.value.http_status == 400


def test_no_answer_and_no_principal() -> None:
    w = World()
    w.bus.answer = lambda cmd: None
    error = refused(lambda: h.halt_market(req(symbol="BTCUSDT"), w.deps()))
    assert (error.code, error.http_status) == (errors.TIMEOUT, 503)
    error = refused(lambda: h.halt_market(req(symbol="BTCUSDT", principal=""), w.deps()))
    assert (error.code, error.http_status) == (errors.UNAUTHORIZED, 403)


# ---------------------------------------------------------------------------------- resolver


def _event(method: str, resource: str, path: str, params: dict[str, str] | None = None,
           body: Any = None, query: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Content-Type": ["application/json"]},
        "queryStringParameters": query, "multiValueQueryStringParameters": None,
        "pathParameters": params, "stageVariables": None,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "stage": "local",
                           "identity": {"userArn": OPERATOR, "accessKey": "AKIAEXAMPLE",
                                        "caller": "AIDAEXAMPLE", "accountId": "123456789012",
                                        "sourceIp": "127.0.0.1"}},
        "body": None if body is None else json.dumps(body), "isBase64Encoded": False,
    }  # fmt: skip


def test_the_resolver_serves_every_route_with_api_gateway_events() -> None:
    w = World()
    app = build(w.deps)
    halt = _event("POST", "/admin/markets/{symbol}/halt", "/admin/markets/BTCUSDT/halt",
                  {"symbol": "BTCUSDT"})  # fmt: skip
    answer = app.resolve(halt, CONTEXT)
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["status"] == "HALT"
    assert isinstance(w.bus.sent[-1], c.SetSymbolStatus) and w.bus.sent[-1].principal == OPERATOR
    answer = app.resolve(_event("GET", "/admin/accounts/{accountId}", "/admin/accounts/8",
                                {"accountId": "8"}), CONTEXT)  # fmt: skip
    assert answer["statusCode"] == 404
    assert json.loads(answer["body"])["code"] == errors.INVALID_PARAMETER
    answer = app.resolve(_event("GET", "/admin/nothing", "/admin/nothing"), CONTEXT)
    assert answer["statusCode"] == 404 and json.loads(answer["body"])["code"] == errors.UNKNOWN
    w.bus.answer = lambda cmd: None
    answer = app.resolve(_event("POST", "/admin/deposits", "/admin/deposits", body={
        "accountId": 7, "asset": "BTC", "amount": "1", "txId": "t"}), CONTEXT)  # fmt: skip
    assert answer["statusCode"] == 503 and json.loads(answer["body"])["code"] == errors.TIMEOUT
    answer = app.resolve(_event("GET", "/admin/funding", "/admin/funding",
                                query={"limit": "2"}), CONTEXT)  # fmt: skip
    assert answer["statusCode"] == 200 and w.funding_calls[-1] == (None, 2)


def test_routes_are_unique_and_each_names_a_handler() -> None:
    seen = {(r.method, r.path) for r in h.ROUTES}
    assert len(seen) == len(h.ROUTES) == 27
