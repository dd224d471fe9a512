"""Balances, fee rates and per-asset totals.

Balances live in one flat dict keyed by ``(account_id, asset)``; each value is a two-item
list ``[free, locked]`` mutated in place, so an order can hold direct references to the two
balances it touches and a fill costs no dict lookups.
"""

from __future__ import annotations

DEFAULT_MAKER_RATE = 100_000  # 0.1% in 1e-8 units
DEFAULT_TAKER_RATE = 100_000
DEFAULT_RATES = (DEFAULT_MAKER_RATE, DEFAULT_TAKER_RATE)

BalanceKey = tuple[int, str]


class Balances:
    __slots__ = ("accounts", "fees", "totals")

    def __init__(self) -> None:
        self.accounts: dict[BalanceKey, list[int]] = {}
        self.fees: dict[int, tuple[int, int]] = {}  # account -> (maker, taker); absent = default
        self.totals: dict[str, int] = {}  # asset -> deposits - withdrawals

    def entry(self, account_id: int, asset: str) -> list[int]:
        """The live ``[free, locked]`` list of an account's asset, created at (0, 0)."""
        key = (account_id, asset)
        entry = self.accounts.get(key)
        if entry is None:
            entry = self.accounts[key] = [0, 0]
        return entry

    def free(self, account_id: int, asset: str) -> int:
        entry = self.accounts.get((account_id, asset))
        return entry[0] if entry is not None else 0

    def rates(self, account_id: int) -> tuple[int, int]:
        return self.fees.get(account_id, DEFAULT_RATES)

    def as_nested(self) -> dict[int, dict[str, tuple[int, int]]]:
        """Non-zero balances only: an untouched and an emptied balance are the same state."""
        out: dict[int, dict[str, tuple[int, int]]] = {}
        for account_id, asset in sorted(self.accounts):
            free, locked = self.accounts[(account_id, asset)]
            if free or locked:
                out.setdefault(account_id, {})[asset] = (free, locked)
        return out
