"""Everything the engine keeps per symbol."""

from __future__ import annotations

from bourse.domain.commands import FEE_ACCOUNT
from bourse.domain.symbols import SymbolSpec
from bourse.engine.balances import Balances
from bourse.engine.book import Book
from bourse.engine.orders import Order
from bourse.engine.stops import Stops


class SymbolState:
    __slots__ = (
        "base",
        "book",
        "by_account",
        "fee_base",
        "fee_quote",
        "last_price",
        "next_order_id",
        "prevented_id",
        "quote",
        "rates",
        "spec",
        "step",
        "stops",
        "trade_id",
        "update_id",
    )

    def __init__(self, spec: SymbolSpec, balances: Balances) -> None:
        self.spec = spec
        self.base = spec.base_asset
        self.quote = spec.quote_asset
        self.step = spec.step_size
        # (maker, taker): what a fill pays when the account has no rates of its own
        self.rates = (spec.maker_commission, spec.taker_commission)
        self.book = Book()
        self.stops = Stops()
        # Open orders (resting or untriggered stop) per account, by client order id.
        self.by_account: dict[int, dict[str, Order]] = {}
        self.next_order_id = 1
        self.trade_id = 0
        self.prevented_id = 0
        self.update_id = 0
        self.last_price = 0  # 0: no trade yet
        self.fee_base = balances.entry(FEE_ACCOUNT, spec.base_asset)
        self.fee_quote = balances.entry(FEE_ACCOUNT, spec.quote_asset)

    def respec(self, spec: SymbolSpec) -> None:
        """Take a new spec of the same symbol (status, filters, commissions)."""
        self.spec = spec
        self.step = spec.step_size
        self.rates = (spec.maker_commission, spec.taker_commission)

    def open_of(self, account_id: int) -> dict[str, Order]:
        orders = self.by_account.get(account_id)
        if orders is None:
            orders = self.by_account[account_id] = {}
        return orders
