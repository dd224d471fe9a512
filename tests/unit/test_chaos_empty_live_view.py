"""Found by `make chaos`: while Redis came back empty after a crash, orders on listed markets
were answered -1121 "Invalid symbol." (the live view lists nothing until the matching service
writes it again). An empty view proves nothing: the command goes to the engine, which knows.
A view that lists markets still refuses the others before they reach the log."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bourse.api.known_symbols import KnownSymbolsBus
from bourse.domain.commands import CancelOrder, NewOrder
from bourse.domain.enums import OrderType, Side
from bourse.domain.errors import BinanceError
from bourse.domain.markets import DEFAULT_MARKETS
from tests.unit.test_api_handlers import NOW, FakeBus, FakeView

pytestmark = pytest.mark.unit
symbols = st.sampled_from([spec.symbol for spec in DEFAULT_MARKETS]) | st.from_regex(
    r"\A[A-Z0-9]{3,12}\Z"
)


def _order(symbol: str) -> NewOrder:
    return NewOrder("r", NOW, 7, symbol, Side.BUY, OrderType.LIMIT, "c1", 1, price=1)


@given(symbols)
def test_an_empty_live_view_sends_every_command_to_the_engine(symbol: str) -> None:
    view, bus = FakeView(), FakeBus()
    view.specs = {}  # Redis restarted without its data
    order, cancel = _order(symbol), CancelOrder("r", NOW, 7, symbol, order_id=1)
    KnownSymbolsBus(bus, view).execute(order)
    KnownSymbolsBus(bus, view).execute(cancel)
    assert bus.sent == [order, cancel]


@given(symbols)
def test_a_listing_view_still_refuses_unlisted_symbols(symbol: str) -> None:
    view, bus = FakeView(), FakeBus()
    command = _order(symbol)
    if symbol in view.specs:
        KnownSymbolsBus(bus, view).execute(command)
        assert bus.sent == [command]
        return
    with pytest.raises(BinanceError) as refused:
        KnownSymbolsBus(bus, view).execute(command)
    assert refused.value.code == -1121 and bus.sent == []
