"""The engine's mutable record of one open (or matching) order.

``OrderInfo`` (domain) is what the order *is* and is shared by all its events; ``Order`` is
what changes while it lives. Slots keep it small and attribute access fast: the book holds
hundreds of thousands of these.
"""

from __future__ import annotations

from bourse.domain.enums import OrderStatus, StpMode, TimeInForce
from bourse.domain.events import OrderInfo


class Order:
    __slots__ = (
        "account_id",
        "alive",
        "cum_quote",
        "displayed",
        "executed",
        "iceberg_qty",
        "info",
        "is_buy",
        "is_market",
        "lock",
        "lock_bal",
        "lock_key",
        "order_id",
        "prevented_qty",
        "price",
        "quote_rem",
        "recv_bal",
        "recv_key",
        "remaining",
        "status",
        "stp_mode",
        "tif",
        "working_ts",
    )

    def __init__(
        self,
        info: OrderInfo,
        is_buy: bool,
        lock_key: tuple[int, str],
        lock_bal: list[int],
        recv_key: tuple[int, str],
        recv_bal: list[int],
    ) -> None:
        self.info = info
        self.order_id = info.order_id
        self.account_id = info.account_id
        self.is_buy = is_buy
        self.price = info.price
        self.remaining = info.quantity  # includes an iceberg's hidden part
        self.iceberg_qty = info.iceberg_qty
        self.displayed = 0  # set when the order rests
        self.executed = 0
        self.cum_quote = 0
        self.quote_rem = info.quote_order_qty  # budget left of a MARKET order by quote
        self.lock = 0  # what this order still holds locked, in lock_bal's asset
        self.lock_key = lock_key
        self.lock_bal = lock_bal  # [free, locked] of the asset it spends
        self.recv_key = recv_key
        self.recv_bal = recv_bal  # [free, locked] of the asset it receives
        self.status = OrderStatus.NEW
        self.stp_mode: StpMode = info.stp_mode
        self.tif: TimeInForce | None = info.time_in_force
        self.is_market = False
        self.working_ts = -1
        self.prevented_qty = 0
        self.alive = True  # False once off the book (a dead queue entry until removed)

    def copy(self) -> Order:
        """Another record of the same order in the same state, on the same balances (what a
        dry run's copy of the book holds: ``bourse.engine.symbol_copy``)."""
        new = Order(self.info, self.is_buy, self.lock_key, self.lock_bal, self.recv_key,
                    self.recv_bal)  # fmt: skip
        new.remaining = self.remaining
        new.displayed = self.displayed
        new.executed = self.executed
        new.cum_quote = self.cum_quote
        new.quote_rem = self.quote_rem
        new.lock = self.lock
        new.status = self.status
        new.stp_mode = self.stp_mode
        new.tif = self.tif
        new.is_market = self.is_market
        new.working_ts = self.working_ts
        new.prevented_qty = self.prevented_qty
        new.alive = self.alive
        return new
