"""The demo market's pure parts (devstack/demo_market.py): its random walk is the seed's, its
ladder is two-sided around the mid, on the symbol's ticks and steps, above the minimum notional."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bourse.domain.amounts import notional, parse_units
from bourse.settings import get_settings
from devstack.demo_market import LEVELS, DemoMarket, Market, _qty_for
from devstack.exchange_processes import PROCESSES
from devstack.paths import StackPaths
from devstack.supervisor import Supervisor

pytestmark = pytest.mark.unit


def _market(symbol: str = "BTCUSDT") -> Market:
    return Market(
        symbol, "BTC", "USDT", tick=parse_units("0.01"), step=parse_units("0.00001"),
        min_notional=parse_units("5"), mid=parse_units("65000"), grid=parse_units("32.5"),
    )  # fmt: skip


def _demo(seed: int) -> DemoMarket:
    return DemoMarket(dataclasses.replace(get_settings(), demo_market_seed=seed))


def _walk(seed: int, steps: int) -> list[int]:
    demo, market = _demo(seed), _market()
    mids = []
    for _ in range(steps):
        demo.walk(market)
        mids.append(market.mid)
    return mids


def test_the_walk_is_the_seeds() -> None:
    assert _walk(7, 200) == _walk(7, 200)
    assert _walk(7, 200) != _walk(8, 200)
    mids = _walk(7, 200)
    tick = parse_units("0.01")
    assert all(mid % tick == 0 for mid in mids)
    # At most a third of the grid per step.
    steps = [abs(b - a) for a, b in zip([parse_units("65000"), *mids], mids, strict=False)]
    assert max(steps) <= parse_units("32.5") // 3


@pytest.mark.parametrize("mid", ["65000", "65000.01", "64999.99", "65016.25"])
def test_the_ladder_is_two_sided_on_ticks_and_steps(mid: str) -> None:
    demo, market = _demo(7), _market()
    market.mid = parse_units(mid)
    ladder = demo.ladder(market)
    bids = sorted((p for side, p in ladder if side == "BUY"), reverse=True)
    asks = sorted(p for side, p in ladder if side == "SELL")
    assert len(bids) == len(asks) == LEVELS
    assert bids[0] < market.mid < asks[0]
    assert asks[0] - bids[0] <= 2 * market.grid
    for (_, price), qty in ladder.items():
        assert price % market.tick == 0 and price % market.grid == 0
        assert qty % market.step == 0
        assert notional(price, qty) >= market.min_notional


def test_qty_for_rounds_up_to_the_step() -> None:
    qty = _qty_for(parse_units("5"), parse_units("65000"), parse_units("0.00001"))
    assert qty == parse_units("0.00008")
    assert notional(parse_units("65000"), qty) >= parse_units("5")


@pytest.mark.parametrize(("value", "started"), [("1", True), ("0", False), ("off", False)])
def test_the_setting_switches_it_out_of_run(
    value: str, started: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BOURSE_DEMO_MARKET", value)
    get_settings.cache_clear()
    try:
        settings = get_settings()
        supervisor = Supervisor(PROCESSES, settings, StackPaths(tmp_path))
        names = [item.spec.name for item in supervisor.running]
    finally:
        get_settings.cache_clear()
    assert ("demo-market" in names) is started
    assert "gateway" in names
