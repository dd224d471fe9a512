"""Dry runs end to end (issue 20, item 3): ``POST /api/v3/order/test`` with ``dryRun=true``
-> local gateway -> Orders function -> Kafka -> matching service (the working tree's engine,
which runs the order on a copy of its book) -> reply.

A book of 1,100 resting orders (550 levels a side), a taker whose buy crosses ten asks and one
of its own sells (STP: the maker expires): the dry run's fills, ids, fees and prevented match
are those of the same order placed right after it, and the book, the balances and the open
orders are what they were before the dry run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bourse.domain.amounts import parse_units
from bourse.domain.commands import NewOrder
from bourse.domain.enums import OrderType, Side, TimeInForce
from bourse.settings import Settings
from tests.integration.api_support import ApiStack, Client, now_ms

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_DRY_RUN_REDIS_DB", "43"))
SYMBOL = "BTCUSDT"
LEVELS = 550  # a side
# Three accounts a side: an account may have 200 open orders on a symbol (MAX_NUM_ORDERS).
SELLERS, BUYERS, TAKER = (4311, 4312, 4313), (4321, 4322, 4323), 4303


@pytest.fixture(scope="module")
def stack(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    s = ApiStack(local_stack, tmp_path_factory.mktemp("dry-run"), REDIS_DB)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def _ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def _limit(acct: int, side: Side, price: str, qty: str, n: int) -> NewOrder:
    return NewOrder(
        f"book-{acct}-{n}", now_ms(), acct, SYMBOL, side, OrderType.LIMIT, f"book{n}",
        quantity=parse_units(qty), price=parse_units(price), time_in_force=TimeInForce.GTC,
    )  # fmt: skip


def _state(client: Client) -> tuple[Any, Any, Any]:
    depth = _ok(client.public("GET", "/api/v3/depth", symbol=SYMBOL, limit=5000))
    account = _ok(client.signed("GET", "/api/v3/account", {"omitZeroBalances": "true"}))
    orders = _ok(client.signed("GET", "/api/v3/openOrders", {"symbol": SYMBOL}))
    return (depth["bids"], depth["asks"]), account["balances"], orders


def test_a_dry_run_predicts_the_order_placed_after_it_and_changes_nothing(
    stack: ApiStack,
) -> None:
    for acct in SELLERS:
        stack.trader(acct, {"BTC": "10"})
    for acct in BUYERS:
        stack.trader(acct, {"USDT": "100000"})
    taker = stack.client(stack.trader(TAKER, {"USDT": "10000", "BTC": "1"}))
    book = [_limit(SELLERS[i % 3], Side.SELL, f"{87000 + i}", "0.001", i)
            for i in range(1, LEVELS + 1)]  # fmt: skip
    # The best bid last: the engine applies commands in order, so once it shows, all have.
    book += [_limit(BUYERS[i % 3], Side.BUY, f"{87000 - i}", "0.001", i)
             for i in range(LEVELS, 0, -1)]  # fmt: skip
    stack.send(book)
    deadline = time.monotonic() + 60
    while not _ok(taker.public("GET", "/api/v3/depth", symbol=SYMBOL, limit=5))["bids"] or (
        _ok(taker.public("GET", "/api/v3/depth", symbol=SYMBOL, limit=5))["bids"][0][0]
        != "86999.00000000"
    ):
        assert time.monotonic() < deadline, "the book was not applied"
        time.sleep(0.2)
    (bids, asks), _, _ = _state(taker)
    assert len(bids) == len(asks) == LEVELS
    # The taker's own sell at 87005: the buy below meets it, and STP (the market's default,
    # EXPIRE_MAKER) expires it instead of a self-trade.
    own = _ok(taker.signed("POST", "/api/v3/order", {
        "symbol": SYMBOL, "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.002", "price": "87005", "newClientOrderId": "own-sell"}))  # fmt: skip
    order = {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": "0.02", "price": "87010", "newClientOrderId": "the-buy"}  # fmt: skip

    before = _state(taker)
    dry = _ok(taker.signed("POST", "/api/v3/order/test", {**order, "dryRun": "true"}))
    assert _state(taker) == before
    placed = _ok(taker.signed("POST", "/api/v3/order", {**order, "newOrderRespType": "FULL"}))

    assert dry["dryRun"] is True and isinstance(dry["asOfSeq"], int)
    assert len(dry["fills"]) == 10  # 0.001 at each ask from 87001 to 87010
    assert dry["fills"] == placed["fills"]
    same = ("orderId", "clientOrderId", "status", "origQty", "executedQty",
            "cummulativeQuoteQty", "price", "type", "side", "selfTradePreventionMode")  # fmt: skip
    assert {k: dry[k] for k in same} == {k: placed[k] for k in same}
    assert dry["status"] == "PARTIALLY_FILLED"  # the rest would rest at 87010
    (prevented,) = dry["preventedMatches"]
    assert prevented["makerOrderId"] == own["orderId"]
    assert prevented["takerOrderId"] == placed["orderId"]
    assert prevented["price"] == "87005.00000000"
    balances = {b["asset"]: b for b in _state(taker)[1]}
    assert dry["balancesAfter"] == [
        {"asset": a, "free": balances[a]["free"], "locked": balances[a]["locked"]}
        for a in ("BTC", "USDT")
    ]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"quantity": "1000"}, -2010),  # more USDT than the account has
        ({"dryRun": "yes"}, -1130),
        ({"symbol": "NOPEUSDT"}, -1121),
    ],
)
def test_a_dry_run_that_fails_answers_as_the_order_would(
    stack: ApiStack, params: dict[str, str], code: int
) -> None:
    client = stack.client(stack.trader(4304, {"USDT": "100"}))
    order = {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "quantity": "0.001", "price": "87000", "dryRun": "true", **params}  # fmt: skip
    response = client.signed("POST", "/api/v3/order/test", order)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == code
