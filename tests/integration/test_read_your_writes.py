"""Read-your-writes through the real stack: once the API has answered a client about an order
(placed, filled, cancelled), every read that client sends next reflects at least that answer.

Six accounts place resting orders, cancel them and take liquidity in a seeded random order;
right after each answer the same client reads GET /api/v3/order (by orderId and by
origClientOrderId), openOrders, account and myTrades. The trade recorder runs, so the record
lags the engine as it does in production: a read that falls back on it too early is seen.
Every stale read is collected, so a failure says how many there were, not only the first.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Client
from tests.integration.record_support import scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_RYW_REDIS_DB", "57"))
SYMBOL = "BTCUSDT"
ACCOUNTS = range(901, 907)
STEPS = 120
# How far an order's status has come: a read may be further along than the answer, never behind.
_RANK = {"NEW": 0, "PARTIALLY_FILLED": 1}
_FINAL = frozenset({"FILLED", "CANCELED", "REJECTED", "EXPIRED", "EXPIRED_IN_MATCH"})


@pytest.fixture(scope="module")
def stack(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    with scratch_database(local_stack.pg_dsn, "test_ryw") as dsn:
        s = ApiStack(local_stack, tmp_path_factory.mktemp("read-your-writes"), REDIS_DB, dsn)
        # Hundreds of reads a minute from one address: the limits are not what is tested here.
        s.env["BOURSE_RATE_LIMITS_ENABLED"] = "false"
        try:
            s.start()
            s.spawn_recorder()
            yield s
        finally:
            s.stop()


@dataclass
class Account:
    client: Client
    open_ids: list[int] = field(default_factory=list)
    serial: int = 0

    def next_client_id(self) -> str:
        self.serial += 1
        return f"ryw-{self.client.trader.account_id if self.client.trader else 0}-{self.serial}"


@dataclass
class Stale:
    """Every read that was behind what the client had been told."""

    found: list[str] = field(default_factory=list)
    reads: int = 0

    def check(self, ok: bool, what: str) -> None:
        self.reads += 1
        if not ok:
            self.found.append(what)


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _at_least(read: dict[str, Any], answer: dict[str, Any]) -> bool:
    """``read`` (GET order) is the answer's order at the answer's state or later."""
    if read.get("orderId") != answer["orderId"]:
        return False
    if answer["status"] in _FINAL:
        return bool(read["status"] == answer["status"])
    if read["status"] not in _FINAL and _RANK[read["status"]] < _RANK[answer["status"]]:
        return False
    return Decimal(read["executedQty"]) >= Decimal(answer["executedQty"])


def _check_reads(acct: Account, answer: dict[str, Any], stale: Stale, label: str) -> None:
    c = acct.client
    order_id, client_id = answer["orderId"], answer["clientOrderId"]
    by_id = c.signed("GET", "/api/v3/order", {"symbol": SYMBOL, "orderId": order_id})
    stale.check(
        by_id.status_code == 200 and _at_least(by_id.json(), answer),
        f"{label}: GET order by orderId {by_id.status_code} {by_id.text[:120]}",
    )
    by_client = c.signed("GET", "/api/v3/order", {"symbol": SYMBOL, "origClientOrderId": client_id})
    stale.check(
        by_client.status_code == 200 and _at_least(by_client.json(), answer),
        f"{label}: GET order by origClientOrderId {by_client.status_code} {by_client.text[:120]}",
    )
    listed = {
        o["orderId"]: o for o in _ok(c.signed("GET", "/api/v3/openOrders", {"symbol": SYMBOL}))
    }
    if answer["status"] in _FINAL:
        stale.check(order_id not in listed, f"{label}: closed order still in openOrders")
    else:
        stale.check(
            order_id in listed and _at_least(listed[order_id], answer),
            f"{label}: open order missing or behind in openOrders",
        )
    # account: what is locked is what the open orders hold (the same moment, the same source)
    balances = {b["asset"]: b for b in _ok(c.signed("GET", "/api/v3/account"))["balances"]}
    holds = Decimal(0)
    for o in listed.values():
        if o["side"] == "BUY":
            holds += Decimal(o["price"]) * (Decimal(o["origQty"]) - Decimal(o["executedQty"]))
    locked = Decimal(balances.get("USDT", {"locked": "0"})["locked"])
    stale.check(locked >= holds, f"{label}: account locks {locked} USDT, open orders hold {holds}")
    fills = {f["tradeId"] for f in answer.get("fills", ())}
    if fills:
        mine = _ok(c.signed("GET", "/api/v3/myTrades", {"symbol": SYMBOL, "orderId": order_id}))
        got = {t["id"] for t in mine if t["orderId"] == order_id}
        stale.check(fills <= got, f"{label}: myTrades?orderId has {sorted(got)} of {sorted(fills)}")
        newest = _ok(c.signed("GET", "/api/v3/myTrades", {"symbol": SYMBOL}))
        got = {t["id"] for t in newest if t["orderId"] == order_id}
        stale.check(
            fills <= got, f"{label}: myTrades (newest) has {sorted(got)} of {sorted(fills)}"
        )


def _place_resting(acct: Account, rng: random.Random) -> dict[str, Any]:
    side = rng.choice(("BUY", "SELL"))
    price = rng.randrange(29_000, 29_900) if side == "BUY" else rng.randrange(30_100, 31_000)
    qty = Decimal(rng.randrange(100, 1_000)) / 100_000
    return dict(_ok(acct.client.signed("POST", "/api/v3/order", {
        "symbol": SYMBOL, "side": side, "type": "LIMIT", "timeInForce": "GTC",
        "quantity": str(qty), "price": str(price), "newClientOrderId": acct.next_client_id(),
        "newOrderRespType": "RESULT",
    })))  # fmt: skip


def _take(acct: Account, rng: random.Random) -> dict[str, Any]:
    side = rng.choice(("BUY", "SELL"))
    qty = Decimal(rng.randrange(100, 2_000)) / 100_000
    return dict(_ok(acct.client.signed("POST", "/api/v3/order", {
        "symbol": SYMBOL, "side": side, "type": "LIMIT", "timeInForce": "IOC",
        "quantity": str(qty), "price": "31000" if side == "BUY" else "29000",
        "newClientOrderId": acct.next_client_id(), "newOrderRespType": "FULL",
    })))  # fmt: skip


def _cancel(acct: Account, rng: random.Random) -> dict[str, Any] | None:
    order_id = acct.open_ids.pop(rng.randrange(len(acct.open_ids)))
    answer = acct.client.signed("DELETE", "/api/v3/order", {"symbol": SYMBOL, "orderId": order_id})
    if answer.status_code == 400 and answer.json()["code"] == -2011:
        return None  # another account's taker filled it meanwhile
    return dict(_ok(answer))


def test_every_read_reflects_the_answer_just_given(stack: ApiStack) -> None:
    accounts = [
        Account(stack.client(stack.trader(a, {"BTC": "10", "USDT": "1000000"}))) for a in ACCOUNTS
    ]
    rng = random.Random(15_16)
    stale = Stale()
    answers = 0
    for step in range(STEPS):
        acct = rng.choice(accounts)
        roll = rng.random()
        if roll < 0.45 or (len(acct.open_ids) == 0 and roll < 0.75):
            answer: dict[str, Any] | None = _place_resting(acct, rng)
            assert answer is not None
            if answer["status"] not in _FINAL:
                acct.open_ids.append(answer["orderId"])
            label = f"step {step} place {answer['status']}"
        elif roll < 0.75:
            answer = _cancel(acct, rng)
            if answer is None:
                continue
            # A cancel's clientOrderId is the cancel's own; the order's is origClientOrderId.
            answer = {**answer, "clientOrderId": answer["origClientOrderId"]}
            label = f"step {step} cancel {answer['status']}"
        else:
            answer = _take(acct, rng)
            label = f"step {step} take {answer['status']} ({len(answer['fills'])} fills)"
        answers += 1
        _check_reads(acct, answer, stale, label)
    assert answers > STEPS // 2
    assert not stale.found, (
        f"{len(stale.found)} of {stale.reads} reads after {answers} answers were stale:\n"
        + "\n".join(stale.found[:40])
    )
