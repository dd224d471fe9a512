"""What the admin plane has told the engine, beyond markets and balances.

Accounts (created ones, and whether each is frozen), the tx ids of credited deposits (a tx id
credits once), withdrawals and their lifecycle, the request ids of admin commands already
applied (a replayed signed record is refused), and delisted symbols. All of it is state: it is
in the snapshot and in the state hash. Entries are never removed: a withdrawal id or tx id is
unique forever, and a replay must be refused however old the original is.
"""

from __future__ import annotations

ACTIVE = "ACTIVE"
FROZEN = "FROZEN"
REQUESTED = "REQUESTED"


class Withdrawal:
    __slots__ = ("account_id", "amount", "asset", "status")

    def __init__(self, account_id: int, asset: str, amount: int, status: str = REQUESTED) -> None:
        self.account_id = account_id
        self.asset = asset
        self.amount = amount
        self.status = status  # REQUESTED, then one of WITHDRAW_OUTCOMES


class Registry:
    __slots__ = ("accounts", "applied", "delisted", "deposits", "next_account_id", "withdrawals")

    def __init__(self) -> None:
        self.accounts: dict[int, bool] = {}  # created account id -> frozen
        self.next_account_id = 1  # what CreateAccount(account_id=0) allocates
        self.deposits: dict[str, tuple[int, str, int]] = {}  # tx id -> (account, asset, amount)
        self.withdrawals: dict[str, Withdrawal] = {}
        # Request ids of applied admin commands; a set is fine: membership only, and the
        # snapshot sorts it.
        self.applied: set[str] = set()
        self.delisted: set[str] = set()

    def create(self, account_id: int) -> None:
        self.accounts[account_id] = False
        if account_id >= self.next_account_id:
            self.next_account_id = account_id + 1

    def status(self, account_id: int) -> str:
        return FROZEN if self.accounts[account_id] else ACTIVE

    def pending_withdrawals(self) -> dict[tuple[int, str], int]:
        """What REQUESTED withdrawals hold locked, per (account, asset)."""
        out: dict[tuple[int, str], int] = {}
        for w in self.withdrawals.values():
            if w.status == REQUESTED:
                key = (w.account_id, w.asset)
                out[key] = out.get(key, 0) + w.amount
        return out
