"""Seeds a fresh exchange through the admin plane, exactly as an operator bootstraps a deployed
one (docs/operations.md): the default markets, and a funded demo account with an API key.

Everything goes through `bourse-admin`'s client (the admin API, SigV4-signed with the local
operator's credentials), never onto Kafka directly. Idempotent, so `make run` seeds on every
start:
* a market already listed is left as it is;
* the demo account is created once (account id 1);
* its deposits carry fixed transaction ids, so the engine credits them once and says
  "duplicate" ever after;
* the API key lives in DynamoDB, which moto keeps in memory only: when the saved key is no
  longer there (a new `up`), a new one is issued, printed with its secret once, and saved in
  the credentials file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bourse.admin.client import AdminClient, AdminError, market_fields
from bourse.domain.markets import DEFAULT_MARKETS, DEMO_FUNDS
from bourse.settings import Settings, get_settings
from devstack.paths import StackPaths

DEMO_ACCOUNT_ID = 1
DEMO_TX_PREFIX = "demo-seed"  # + "-<account>-<asset>": one credit per asset, ever
CREDENTIALS_FILE = "demo-credentials.json"


@dataclass(frozen=True)
class SeedReport:
    markets_added: tuple[str, ...]
    account_id: int
    credited: tuple[str, ...]  # assets credited by this run (empty: all were already)
    api_key: str
    secret_shown: str | None  # the secret, only on the run that issued the key
    credentials_file: Path

    def lines(self) -> list[str]:
        listed = ", ".join(spec.symbol for spec in DEFAULT_MARKETS)
        added = f"added {', '.join(self.markets_added)}" if self.markets_added else "all listed"
        funds = f"credited {', '.join(self.credited)}" if self.credited else "already funded"
        out = [
            f"markets: {listed} ({added})",
            f"demo account {self.account_id}: {funds}; API key {self.api_key}",
        ]
        if self.secret_shown is not None:
            out.append(f"demo account {self.account_id}: secret {self.secret_shown}  (shown once)")
        out.append(f"demo credentials kept in {self.credentials_file}")
        return out


def ensure_account(client: AdminClient, account_id: int) -> None:
    try:
        client.account(account_id)
    except AdminError as exc:
        if exc.status != 404:
            raise
        client.create_account(account_id)


def ensure_markets(client: AdminClient) -> tuple[str, ...]:
    listed = {m["symbol"] for m in client.markets()}
    added = []
    for spec in DEFAULT_MARKETS:
        if spec.symbol not in listed:
            client.add_market(market_fields(spec))
            added.append(spec.symbol)
    return tuple(added)


def ensure_funds(
    client: AdminClient, account_id: int, funds: tuple[tuple[str, str], ...], tx_prefix: str
) -> tuple[str, ...]:
    """Deposits with fixed transaction ids: credited on the first run only."""
    credited = []
    for asset, amount in funds:
        answer = client.deposit(account_id, asset, amount, f"{tx_prefix}-{account_id}-{asset}")
        if not answer.get("duplicate"):
            credited.append(asset)
    return tuple(credited)


def ensure_key(
    client: AdminClient, account_id: int, path: Path, label: str
) -> tuple[str, str, bool]:
    """The saved key if the admin plane still knows it, else a new one saved (0600)."""
    saved: dict[str, Any] | None = None
    if path.exists():
        saved = json.loads(path.read_text())
    if saved is not None and saved.get("accountId") == account_id:
        active = {k["apiKey"] for k in client.keys(account_id) if k.get("status") == "ACTIVE"}
        if saved["apiKey"] in active:
            return str(saved["apiKey"]), str(saved["secret"]), False
    key = client.create_key(account_id, key_type="HMAC", permissions=("READ", "TRADE"), label=label)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {"accountId": account_id, "apiKey": key["apiKey"], "secret": key["secret"]}, handle
        )
    tmp.replace(path)
    return str(key["apiKey"]), str(key["secret"]), True


def seed(settings: Settings | None = None, client: AdminClient | None = None) -> SeedReport:
    settings = settings or get_settings()
    client = client or AdminClient.local(settings)
    credentials_file = StackPaths.from_settings(settings).root / CREDENTIALS_FILE
    added = ensure_markets(client)
    ensure_account(client, DEMO_ACCOUNT_ID)
    credited = ensure_funds(client, DEMO_ACCOUNT_ID, DEMO_FUNDS, DEMO_TX_PREFIX)
    api_key, secret, issued = ensure_key(client, DEMO_ACCOUNT_ID, credentials_file, "demo")
    return SeedReport(
        added, DEMO_ACCOUNT_ID, credited, api_key, secret if issued else None, credentials_file
    )


def main() -> None:
    for line in seed().lines():
        print(line)


if __name__ == "__main__":
    main()
