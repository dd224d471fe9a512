"""Engine vs record, pure: the differences per account and asset, and per funding id.

Balances: both sides are ``{account: {asset: (free, locked)}}``; a missing pair counts as
(0, 0), as the engine's ``balances()`` lists non-zero pairs only.

Funding: both sides are ``{(funding_id, kind): FundingItem}`` (the engine's deposits and
withdrawals, the record's ``funding`` table); compared per id, per asset total by kind and
status, and per account's pending (still REQUESTED, so locked) withdrawals.
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


# ------------------------------------------------------------------------------- funding


@dataclass(frozen=True, slots=True)
class FundingItem:
    """One deposit or withdrawal as a side knows it, keyed by (funding_id, kind)."""

    account_id: int
    asset: str
    amount: int
    status: str  # CREDITED | REQUESTED | COMPLETED | FAILED | CANCELED


Funding = dict[tuple[str, str], FundingItem]


@dataclass(frozen=True, slots=True)
class FundingDifference:
    what: str  # the line's subject: "funding KIND id", "funding total ...", "pending ..."
    engine: object
    record: object

    def __str__(self) -> str:
        return f"{self.what}: engine {_show(self.engine)}, record {_show(self.record)}"


def _show(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, FundingItem):
        return f"account={value.account_id} {value.asset} {value.amount} {value.status}"
    return str(value)


def funding_totals(funding: Funding) -> dict[tuple[str, str, str], int]:
    """Per (asset, kind, status): the sum of the amounts (deposits credited, withdrawals by
    status)."""
    out: dict[tuple[str, str, str], int] = {}
    for (_, kind), item in funding.items():
        key = (item.asset, kind, item.status)
        out[key] = out.get(key, 0) + item.amount
    return out


def pending_withdrawals(funding: Funding) -> dict[tuple[int, str], int]:
    """Per (account, asset): the amount locked by withdrawals still REQUESTED."""
    out: dict[tuple[int, str], int] = {}
    for (_, kind), item in funding.items():
        if kind == "WITHDRAWAL" and item.status == "REQUESTED":
            key = (item.account_id, item.asset)
            out[key] = out.get(key, 0) + item.amount
    return out


def funding_differences(engine: Funding, record: Funding) -> list[FundingDifference]:
    """Every funding id whose state differs, then every per-asset total (by kind and status)
    and every account's pending withdrawals that differ. One wrong row usually shows in all
    three; each is a fact an operator checks, so each counts."""
    out: list[FundingDifference] = []
    for key in sorted(engine.keys() | record.keys(), key=lambda k: (k[1], k[0])):
        a, b = engine.get(key), record.get(key)
        if a != b:
            out.append(FundingDifference(f"funding {key[1]} {key[0]}", a, b))
    mine, theirs = funding_totals(engine), funding_totals(record)
    for asset, kind, status in sorted(mine.keys() | theirs.keys()):
        x, y = mine.get((asset, kind, status), 0), theirs.get((asset, kind, status), 0)
        if x != y:
            out.append(FundingDifference(f"funding total {asset} {kind} {status}", x, y))
    p, q = pending_withdrawals(engine), pending_withdrawals(record)
    for account, asset in sorted(p.keys() | q.keys()):
        x, y = p.get((account, asset), 0), q.get((account, asset), 0)
        if x != y:
            out.append(FundingDifference(f"pending withdrawals account {account} {asset}", x, y))
    return out


def net_differences(engine: dict[str, int], record: dict[str, int]) -> list[FundingDifference]:
    """Per asset, the money on deposit (deposits credited - withdrawals completed): a missing
    asset counts as 0."""
    out: list[FundingDifference] = []
    for asset in sorted(engine.keys() | record.keys()):
        x, y = engine.get(asset, 0), record.get(asset, 0)
        if x != y:
            out.append(FundingDifference(f"funding net {asset}", x, y))
    return out
