"""Seeds a fresh exchange: the default markets, and a funded demo account with an API key.

Idempotent. The markets and the demo funds are commands (ADD_SYMBOL, DEPOSIT) on the command
log, produced in one Kafka transaction and only when the log is empty: the engine is the only
thing that changes a balance, and a log that already has history has been seeded. The API key
lives in DynamoDB, which moto keeps in memory, so it is put again on every run from the
credentials file the first run wrote (and printed, once).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from kafka import TopicPartition

from bourse.adapters import kafka
from bourse.adapters.api_keys import ApiKey, new_credentials, put_api_key
from bourse.domain.amounts import parse_units
from bourse.domain.codec import encode_command
from bourse.domain.commands import AddSymbol, Command, Deposit
from bourse.domain.markets import DEFAULT_MARKETS, DEMO_FUNDS
from bourse.settings import get_settings

DEMO_ACCOUNT_ID = 1
SEED_TRANSACTIONAL_ID = "bourse-seed"


@dataclass(frozen=True)
class SeedReport:
    markets_seeded: bool
    api_key: str
    secret_shown: str | None  # the secret, only on the run that created it
    credentials_file: Path

    def lines(self) -> list[str]:
        markets = ", ".join(spec.symbol for spec in DEFAULT_MARKETS)
        out = [
            f"markets: {markets} ({'seeded now' if self.markets_seeded else 'already seeded'})",
            f"demo account {DEMO_ACCOUNT_ID}: API key {self.api_key}",
        ]
        if self.secret_shown is not None:
            out.append(f"demo account {DEMO_ACCOUNT_ID}: secret {self.secret_shown}  (shown once)")
        out.append(f"demo credentials kept in {self.credentials_file}")
        return out


def seed_commands(now_ms: int) -> list[Command]:
    commands: list[Command] = [
        AddSymbol(request_id=f"seed-symbol-{spec.symbol}", ts=now_ms, spec=spec)
        for spec in DEFAULT_MARKETS
    ]
    commands += [
        Deposit(
            request_id=f"seed-deposit-{asset}",
            ts=now_ms,
            account_id=DEMO_ACCOUNT_ID,
            asset=asset,
            amount=parse_units(amount),
        )
        for asset, amount in DEMO_FUNDS
    ]
    return commands


def _command_log_is_empty() -> bool:
    settings = get_settings()
    consumer = kafka.consumer(consumer_timeout_ms=3000)
    try:
        partition = TopicPartition(settings.commands_topic, 0)
        consumer.assign([partition])
        begin = consumer.beginning_offsets([partition])[partition]
        end = consumer.end_offsets([partition])[partition]
        if end <= begin:
            return True
        # Offsets can be taken by aborted transactions only: look for one committed record.
        consumer.seek(partition, begin)
        return not consumer.poll(timeout_ms=3000, max_records=1)
    finally:
        consumer.close()


def _seed_markets(now_ms: int) -> bool:
    if not _command_log_is_empty():
        return False
    settings = get_settings()
    producer = kafka.producer(transactional_id=SEED_TRANSACTIONAL_ID)
    try:
        producer.init_transactions()
        producer.begin_transaction()
        for command in seed_commands(now_ms):
            producer.send(settings.commands_topic, value=encode_command(command), partition=0)
        producer.commit_transaction()
    finally:
        producer.close()
    return True


def _demo_credentials(path: Path) -> tuple[str, str, bool]:
    if path.exists():
        saved = json.loads(path.read_text())
        return saved["apiKey"], saved["secret"], False
    api_key, secret = new_credentials()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"accountId": DEMO_ACCOUNT_ID, "apiKey": api_key, "secret": secret}, handle)
    return api_key, secret, True


def seed() -> SeedReport:
    settings = get_settings()
    now_ms = time.time_ns() // 1_000_000
    credentials_file = Path(settings.stack_dir) / "demo-credentials.json"
    api_key, secret, created = _demo_credentials(credentials_file)
    put_api_key(
        ApiKey(api_key=api_key, secret=secret, account_id=DEMO_ACCOUNT_ID, label="demo"),
        created_at_ms=now_ms,
    )
    markets_seeded = _seed_markets(now_ms)
    return SeedReport(markets_seeded, api_key, secret if created else None, credentials_file)


def main() -> None:
    for line in seed().lines():
        print(line)


if __name__ == "__main__":
    main()
