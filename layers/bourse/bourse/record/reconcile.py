"""Engine balances vs the record's balance projection: the differences, per account and asset.

Both sides are ``{account: {asset: (free, locked)}}``; a missing pair counts as (0, 0), as the
engine's ``balances()`` lists non-zero pairs only.
"""

from __future__ import annotations

from dataclasses import dataclass

Balances = dict[int, dict[str, tuple[int, int]]]


@dataclass(frozen=True, slots=True)
class Difference:
    account_id: int
    asset: str
    engine: tuple[int, int]  # (free, locked)
    record: tuple[int, int]

    def __str__(self) -> str:
        return (
            f"account {self.account_id} {self.asset}: engine free={self.engine[0]} "
            f"locked={self.engine[1]}, record free={self.record[0]} locked={self.record[1]}"
        )


def differences(engine: Balances, record: Balances) -> list[Difference]:
    out: list[Difference] = []
    for account in sorted(engine.keys() | record.keys()):
        mine, theirs = engine.get(account, {}), record.get(account, {})
        for asset in sorted(mine.keys() | theirs.keys()):
            a, b = mine.get(asset, (0, 0)), theirs.get(asset, (0, 0))
            if a != b:
                out.append(Difference(account, asset, a, b))
    return out
