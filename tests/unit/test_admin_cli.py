"""bourse-admin's own logic, against a fake admin API: argument parsing, what `accounts create`
composes (account, key, deposits with generated transaction ids), and what --json prints."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bourse.admin import cli
from bourse.admin.client import AdminClient, AdminError, market_fields
from bourse.domain.markets import DEFAULT_MARKETS

pytestmark = pytest.mark.unit


class FakeAdmin:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def create_account(self, account_id: int | None = None) -> dict[str, Any]:
        self.calls.append(("create_account", account_id))
        return {"accountId": account_id or 7, "status": "ACTIVE"}

    def create_key(self, account_id: int, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("create_key", (account_id, kwargs)))
        secret = "s" * 64 if kwargs["key_type"] == "HMAC" else None
        return {"apiKey": "k" * 64, "type": kwargs["key_type"], "secret": secret}

    def deposit(self, account_id: int, asset: str, amount: str, tx_id: str) -> dict[str, Any]:
        self.calls.append(("deposit", (account_id, asset, amount, tx_id)))
        return {"txId": tx_id, "status": "CREDITED", "duplicate": False}

    def add_market(self, fields: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("add_market", fields))
        return {**fields, "status": "TRADING"}

    def update_market(self, symbol: str, fields: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("update_market", (symbol, fields)))
        return {"symbol": symbol, **fields}

    def markets(self) -> list[dict[str, Any]]:
        raise AdminError(403, 0, "Missing Authentication Token")


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    fake = FakeAdmin()
    monkeypatch.setattr(AdminClient, "local", classmethod(lambda cls, settings: fake))
    code = cli.main(["--local", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err, fake


def test_accounts_create_with_funds_prints_the_one_json_object_scripts_read(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _, fake = run(
        monkeypatch, capsys, "accounts", "create", "--fund", "BTC=10,ETH=100,USDT=1000000", "--json"
    )
    assert code == 0
    printed = json.loads(out)
    assert (printed["accountId"], printed["apiKey"], printed["secret"]) == (7, "k" * 64, "s" * 64)
    assert out.count("\n") == 1  # one line, one object
    key_call = next(args for name, args in fake.calls if name == "create_key")
    assert key_call[1]["permissions"] == ("READ", "TRADE") and key_call[1]["key_type"] == "HMAC"
    deposits = [args for name, args in fake.calls if name == "deposit"]
    assert [(a, amt) for _, a, amt, _ in deposits] == [
        ("BTC", "10"),
        ("ETH", "100"),
        ("USDT", "1000000"),
    ]
    tx_ids = [tx for *_, tx in deposits]
    assert len(set(tx_ids)) == 3 and all(tx.startswith("bourse-admin-") for tx in tx_ids)


def test_an_ed25519_account_has_no_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    pem = tmp_path / "k.pem"
    pem.write_text("-----BEGIN PUBLIC KEY-----\n...\n-----END PUBLIC KEY-----\n")
    code, out, _, fake = run(
        monkeypatch, capsys, "accounts", "create", "--key-type", "ED25519",
        "--public-key", str(pem), "--json",
    )  # fmt: skip
    assert code == 0
    printed = json.loads(out)
    assert "secret" not in printed and printed["keyType"] == "ED25519"
    key_call = next(args for name, args in fake.calls if name == "create_key")
    assert key_call[1]["public_key"] == pem.read_text()


def test_a_default_market_by_name_takes_its_filters(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _, fake = run(monkeypatch, capsys, "markets", "add", "ETHBTC", "--maker", "0.0005")
    assert code == 0
    sent = fake.calls[0][1]
    spec = next(s for s in DEFAULT_MARKETS if s.symbol == "ETHBTC")
    assert sent == {**market_fields(spec), "makerCommission": "0.0005"}
    assert "status: TRADING" in out


def test_fees_market_is_a_market_update(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _, fake = run(
        monkeypatch, capsys, "fees", "market", "BTCUSDT", "--maker", "0.0008", "--taker", "0.001"
    )
    assert code == 0
    assert fake.calls == [
        ("update_market", ("BTCUSDT", {"makerCommission": "0.0008", "takerCommission": "0.001"}))
    ]


def test_a_refusal_is_one_line_on_stderr_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err, _ = run(monkeypatch, capsys, "markets", "list", "--json")
    assert (code, out) == (1, "")
    assert err == "bourse-admin: HTTP 403: Missing Authentication Token\n"


@pytest.mark.parametrize("bad", ["BTC", "BTC=", "=1", "BTC=1,ETH"])
def test_fund_lists_are_asset_equals_amount(bad: str) -> None:
    with pytest.raises(Exception, match="ASSET=AMOUNT"):
        cli.parse_funds(bad)


def test_every_group_and_action_parses() -> None:
    parser = cli.build_parser()
    for argv in (
        ["markets", "list"], ["markets", "halt", "BTCUSDT"], ["markets", "delist", "X"],
        ["markets", "update", "BTCUSDT", "--tick-size", "0.1"],
        ["accounts", "list"], ["accounts", "show", "1"], ["accounts", "freeze", "1"],
        ["keys", "create", "1", "--type", "ED25519", "--public-key", "f", "--ip", "1.2.3.4"],
        ["keys", "list", "1"], ["keys", "revoke", "K"], ["keys", "rotate", "K"],
        ["funds", "deposit", "1", "BTC", "1", "--tx-id", "t"],
        ["funds", "withdraw", "1", "BTC", "1"],
        ["funds", "complete", "w"], ["funds", "fail", "w"], ["funds", "cancel", "w"],
        ["funds", "history", "--account-id", "1"],
        ["fees", "account", "1", "--maker", "0", "--taker", "0"], ["fees", "show"],
    ):  # fmt: skip
        args = parser.parse_args(["--stack", "bourse-dev", *argv, "--json"])
        assert callable(args.handler) and args.json
