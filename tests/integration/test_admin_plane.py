"""The admin plane end to end (issue 13, docs/operations.md): an empty private exchange operated
only through `bourse-admin`, traded on through python-binance, then reconciled; a forged admin
command written straight onto the commands topic; admin requests without a valid SigV4
signature.

The exchange is the API tests' private one (tests/integration/api_support.py: the matching
service, the gateway with its admin API, the recorder into a scratch database), started with
no market at all. `bourse-admin --local` reaches it through the environment the stack runs on
(its gateway port), exactly as an operator's shell reaches `make run`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException
from botocore.credentials import Credentials
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bourse.adapters import aws
from bourse.adapters.redis_book import read_balances
from bourse.admin.client import AdminClient, AdminError, Endpoint, local_operator_credentials
from bourse.domain.amounts import parse_units
from bourse.domain.commands import Deposit
from bourse.settings import Settings
from tests.integration.api_support import ApiStack, now_ms
from tests.integration.record_support import scratch_database

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
REDIS_DB = int(os.environ.get("BOURSE_TEST_ADMIN_REDIS_DB", "40"))
BOURSE_ADMIN = str(Path(sys.executable).parent / "bourse-admin")


@pytest.fixture(scope="module")
def stack(local_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiStack]:
    with scratch_database(local_stack.pg_dsn, "test_admin") as dsn:
        s = ApiStack(local_stack, tmp_path_factory.mktemp("admin"), REDIS_DB, dsn)
        try:
            s.start(markets=False)
            s.spawn_recorder()
            yield s
        finally:
            s.stop()


def admin(stack: ApiStack, *args: str) -> Any:
    """`bourse-admin --local ... --json` on the stack; its one JSON document."""
    done = subprocess.run(
        [BOURSE_ADMIN, "--local", *args, "--json"],
        env=stack.env, cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, f"bourse-admin {' '.join(args)}: {done.stderr}"
    return json.loads(done.stdout)


def binance(
    stack: ApiStack, api_key: str, secret: str | None = None, pem: str | None = None
) -> Client:
    client = Client(api_key, secret, private_key=pem, ping=False)
    client.API_URL = stack.base_url + "/api"
    return client


def balance(client: Client, asset: str) -> tuple[str, str]:
    row = client.get_asset_balance(asset=asset)
    return row["free"], row["locked"]


def ed25519_pair(tmp: Path) -> tuple[str, Path]:
    """(private key PEM for the trader, the public key's PEM file for the operator)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = tmp / "trader-ed25519.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_from_an_empty_exchange_to_a_trade_and_back_only_through_bourse_admin(
    stack: ApiStack, tmp_path: Path
) -> None:
    # Two markets on an exchange that lists none.
    assert admin(stack, "markets", "list") == {"markets": []}
    assert admin(stack, "markets", "add", "BTCUSDT")["status"] == "TRADING"
    assert admin(stack, "markets", "add", "ETHUSDT")["status"] == "TRADING"
    assert [m["symbol"] for m in admin(stack, "markets", "list")["markets"]] == [
        "BTCUSDT",
        "ETHUSDT",
    ]

    # Two accounts: one with an HMAC key, one with an Ed25519 key whose private half the
    # trader keeps (the admin plane never sees it).
    buyer = admin(stack, "accounts", "create", "--fund", "USDT=100000")
    assert set(buyer) >= {"accountId", "apiKey", "secret"}
    private_pem, public_file = ed25519_pair(tmp_path)
    seller = admin(
        stack, "accounts", "create", "--key-type", "ED25519", "--public-key", str(public_file),
        "--fund", "BTC=2,ETH=10",
    )  # fmt: skip
    assert "secret" not in seller and seller["keyType"] == "ED25519"
    assert buyer["accountId"] != seller["accountId"]
    buyer_id, seller_id = str(buyer["accountId"]), str(seller["accountId"])

    # The same deposit twice (one transaction id): credited once, and said so.
    first = admin(stack, "funds", "deposit", buyer_id, "USDT", "50", "--tx-id", "tx-dup-1")
    again = admin(stack, "funds", "deposit", buyer_id, "USDT", "50", "--tx-id", "tx-dup-1")
    assert (first["duplicate"], again["duplicate"]) == (False, True)
    taker = binance(stack, buyer["apiKey"], buyer["secret"])
    maker = binance(stack, seller["apiKey"], pem=private_pem)
    assert balance(taker, "USDT") == ("100050.00000000", "0.00000000")

    # A trade between them through python-binance, the seller signing with Ed25519.
    resting = maker.order_limit_sell(symbol="BTCUSDT", quantity="0.5", price="30000")
    assert resting["status"] == "NEW"
    filled = taker.order_market_buy(symbol="BTCUSDT", quantity="0.5")
    assert filled["status"] == "FILLED"
    assert filled["fills"][0]["price"] == "30000.00000000"
    assert balance(taker, "BTC") == ("0.49950000", "0.00000000")  # 0.1 % taker commission
    assert balance(maker, "USDT") == ("14985.00000000", "0.00000000")

    # A withdrawal requested (funds locked) then completed (debited) ...
    paid = admin(stack, "funds", "withdraw", buyer_id, "USDT", "1000")
    assert paid["status"] == "REQUESTED"
    assert balance(taker, "USDT") == ("84050.00000000", "1000.00000000")
    assert admin(stack, "funds", "complete", paid["withdrawalId"])["status"] == "COMPLETED"
    assert balance(taker, "USDT") == ("84050.00000000", "0.00000000")
    # ... and another cancelled (unlocked).
    kept = admin(stack, "funds", "withdraw", seller_id, "BTC", "0.1")
    assert balance(maker, "BTC") == ("1.40000000", "0.10000000")
    assert admin(stack, "funds", "cancel", kept["withdrawalId"])["status"] == "CANCELED"
    assert balance(maker, "BTC") == ("1.50000000", "0.00000000")

    # A market halted refuses orders; resumed, it takes them again.
    assert admin(stack, "markets", "halt", "ETHUSDT")["status"] == "HALT"
    with pytest.raises(BinanceAPIException):
        maker.order_limit_sell(symbol="ETHUSDT", quantity="1", price="2000")
    assert admin(stack, "markets", "resume", "ETHUSDT")["status"] == "TRADING"
    assert maker.order_limit_sell(symbol="ETHUSDT", quantity="1", price="2000")["status"] == "NEW"

    # A revoked key fails on its very next request, not after a cache expires.
    maker.get_account()  # warm: the authorizer's and the function's caches hold the key
    assert admin(stack, "keys", "revoke", seller["apiKey"])["status"] == "REVOKED"
    with pytest.raises(BinanceAPIException) as refused:
        maker.get_account()
    assert refused.value.code == -2015
    taker.get_account()  # the other key is untouched

    # The record has the funding history, and reconciles with the engine to the unit.
    stack.wait_recorded()
    history = admin(stack, "funds", "history", "--account-id", buyer_id)["funding"]
    assert {(f["kind"], f["status"]) for f in history} == {
        ("DEPOSIT", "CREDITED"),
        ("WITHDRAWAL", "COMPLETED"),
    }
    assert len([f for f in history if f["kind"] == "DEPOSIT"]) == 2  # the repeat is not there
    done = subprocess.run(
        ["make", "--no-print-directory", "reconcile"],
        env=stack.env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.stdout.splitlines()[-1] == "reconcile: 0 differences", done.stdout + done.stderr


def _messages(queue_url: str, wanted: int, timeout: float) -> list[str]:
    sqs = aws.client("sqs")
    bodies: list[str] = []
    deadline = time.monotonic() + timeout
    while len(bodies) < wanted and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        bodies += [m["Body"] for m in got.get("Messages", [])]
    return bodies


def test_a_forged_deposit_on_the_commands_topic_changes_nothing_and_raises_an_alert(
    stack: ApiStack,
) -> None:
    victim = admin(stack, "accounts", "create", "--no-key", "--fund", "USDT=1")
    account_id = int(victim["accountId"])
    assert stack.alerts_topic_arn is not None
    alerts = stack.subscribe(stack.alerts_topic_arn)
    before = read_balances(stack.redis, account_id)
    forged = Deposit(
        "forged-deposit-1", now_ms(), account_id, "USDT", parse_units("1000000"), tx_id="forged"
    )
    stack._produce([forged])  # a plain record, as any producer on the topic could write

    bodies = _messages(alerts, 1, timeout=60)
    assert any("forged-deposit-1" in body for body in bodies), bodies
    assert read_balances(stack.redis, account_id) == before
    stack.wait_recorded()
    assert stack.pg_dsn is not None
    with psycopg.connect(stack.pg_dsn) as conn:
        row = conn.execute(
            "SELECT command, code FROM admin_log WHERE request_id = %s", ("forged-deposit-1",)
        ).fetchone()
    assert row is not None and int(row[1]) == -1002


def test_admin_requests_without_a_valid_signature_are_refused_and_change_nothing(
    stack: ApiStack,
) -> None:
    operator = local_operator_credentials(stack.settings)
    endpoint = Endpoint(stack.base_url, stack.settings.region)
    before = AdminClient(endpoint, operator).accounts()

    unsigned = requests.post(stack.base_url + "/admin/accounts", json={}, timeout=30)
    assert unsigned.status_code == 403
    assert unsigned.json() == {"message": "Missing Authentication Token"}

    wrong_secret = Credentials(operator.access_key, "not-the-secret-" + "x" * 25)
    unknown_key = Credentials("AKIAUNKNOWNOPERATOR0", operator.secret_key)
    for credentials in (wrong_secret, unknown_key):
        with pytest.raises(AdminError) as refused:
            AdminClient(endpoint, credentials).create_account()
        assert refused.value.status == 403

    assert AdminClient(endpoint, operator).accounts() == before
