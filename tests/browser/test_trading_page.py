"""The trading page in a real browser (Debian's chromium driven by Playwright), against a private
exchange (api_support.ApiStack, with its broadcaster) and the demo market trading on it.

What a person does: open the page, see the book and the trades fill from the WebSocket
streams, paste an API key and secret, place a limit order, see it in the open orders and its
amount locked, see a rejected order's message, cancel the order, see the balance restored.
The screenshot, taken while the order rests, is the test's artifact (test-artifacts/) and
docs/screenshot.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from bourse.settings import Settings
from tests.integration.api_support import REPO, ApiStack, Trader
from tests.integration.ws_support import private_tables, ws_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = int(os.environ.get("BOURSE_TEST_BROWSER_REDIS_DB", "30"))
CHROMIUM = os.environ.get("BOURSE_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = REPO / "docs" / "screenshot.png"
ARTIFACTS = REPO / "test-artifacts"
WAIT_MS = 30_000
QUOTES_TIMEOUT_S = 180


@pytest.fixture(scope="module")
def stack(
    local_stack: Settings,
    aws_client: Callable[[str], Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiStack]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make system-packages` installs chromium")
    if not (REPO / "frontend/public/vendor/lightweight-charts.mjs").exists():
        pytest.fail("the chart library is not in frontend/public/vendor: run `make frontend`")
    logs = tmp_path_factory.mktemp("browser")
    # WebSocket connections and subscriptions in tables of its own: a broadcaster reading the
    # shared ones would also post to every other stack's connections.
    with private_tables(aws_client("dynamodb"), local_stack) as tables:
        s = ws_stack(local_stack, logs, REDIS_DB, tables)
        demo: subprocess.Popen[bytes] | None = None
        try:
            s.start()
            s.spawn_broadcaster()
            with (logs / "demo-market.log").open("wb") as log:
                demo = subprocess.Popen(
                    [sys.executable, "-m", "devstack.demo_market"],
                    env={**s.env, "BOURSE_DEMO_MARKET_INTERVAL_MS": "500"},
                    stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                )  # fmt: skip
            _wait_for_quotes(s, demo)
            yield s
        finally:
            if demo is not None:  # before the gateway, so that it can cancel its quotes
                demo.terminate()
                try:
                    demo.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    demo.kill()
                    demo.wait()
            s.stop()


def _wait_for_quotes(stack: ApiStack, demo: subprocess.Popen[bytes]) -> None:
    """Until the demo market quotes both sides of BTCUSDT: its start (keys, deposits, first
    orders) takes a minute on a busy machine, and the page is what this test measures."""
    deadline = time.monotonic() + QUOTES_TIMEOUT_S
    client = stack.client()
    while True:
        assert demo.poll() is None, f"the demo market exited with {demo.returncode}"
        depth = client.public("GET", "/api/v3/depth", symbol="BTCUSDT", limit=5).json()
        if len(depth["bids"]) >= 4 and len(depth["asks"]) >= 4:
            return
        assert time.monotonic() < deadline, "the demo market did not quote BTCUSDT"
        time.sleep(0.5)


@pytest.fixture(scope="module")
def carol(stack: ApiStack) -> Trader:
    return stack.trader(41, {"BTC": "1", "USDT": "100000"})


@pytest.fixture(scope="module")
def page(stack: ApiStack) -> Iterator[Page]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 900})
            # Every order goes through Kafka and the matching service: seconds on a busy machine.
            context.set_default_timeout(WAIT_MS)
            expect.set_options(timeout=WAIT_MS)
            yield context.new_page()
        finally:
            browser.close()


def _balance(asset: str, column: str) -> str:
    return f"#balances tr[data-asset='{asset}'] .{column}"


def test_trade_from_the_page(stack: ApiStack, carol: Trader, page: Page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{stack.base_url}/#BTCUSDT")
    expect(page.locator("#market")).to_have_value("BTCUSDT")
    # One-second candles: the chart has a shape within the test's half minute.
    page.click(".interval[data-interval='1s']")

    # The demo market's ladder and its taker's trades reach the page through the streams
    # (REST polling is only the page's fallback, and would not bring trades here: this stack
    # has no recorder, so no trade history).
    expect(page.locator("#market-mode")).to_have_attribute("data-mode", "stream")
    expect(page.locator("#book-bids .level").nth(3)).to_be_visible()
    expect(page.locator("#book-asks .level").nth(3)).to_be_visible()
    expect(page.locator("#trades .trade").nth(7)).to_be_visible()

    # The key: the page shows the account once the signed requests work.
    page.click(".tab[data-tab='keys']")
    page.fill("#api-key", carol.api_key)
    page.fill("#api-secret", carol.secret)
    page.click("#save-keys")
    expect(page.locator(_balance("USDT", "free"))).to_have_text("100000.00000000")
    expect(page.locator("#user-mode")).to_have_attribute("data-mode", "stream")

    # A rejected order shows the exchange's own message.
    page.click("#side-buy")
    page.click("#type-limit")
    page.fill("#price", "30000.001")
    page.fill("#qty", "0.01")
    page.click("#place-order")
    expect(page.locator("#order-message")).to_contain_text("Filter failure: PRICE_FILTER")
    expect(page.locator("#order-message")).to_have_class("message error")

    # A limit buy far below the market rests: it shows, and its amount is locked.
    page.fill("#price", "30000")
    page.click("#place-order")
    expect(page.locator("#order-message")).to_contain_text("NEW")
    row = page.locator("#open-orders tr")
    expect(row).to_have_count(1)
    expect(row.locator(".price")).to_have_text("30000.00")
    expect(row.locator(".qty")).to_have_text("0.01000")
    page.click(".tab[data-tab='balances']")
    expect(page.locator(_balance("USDT", "locked"))).to_have_text("300.00000000")
    expect(page.locator(_balance("USDT", "free"))).to_have_text("99700.00000000")
    page.click(".tab[data-tab='open-orders']")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "trading-page.png"))
    shutil.copyfile(ARTIFACTS / "trading-page.png", SCREENSHOT)

    # Cancel: the row goes, the balance is whole again.
    row.locator("button.cancel").click()
    expect(page.locator("#order-message")).to_contain_text("CANCELED")
    expect(page.locator("#open-orders tr")).to_have_count(0)
    page.click(".tab[data-tab='balances']")
    expect(page.locator(_balance("USDT", "free"))).to_have_text("100000.00000000")
    expect(page.locator(_balance("USDT", "locked"))).to_have_text("0.00000000")
    assert errors == []
