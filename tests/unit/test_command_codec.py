"""Commands survive the wire exactly, and a malformed record fails loudly at decoding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bourse.domain.codec import CommandDecodeError, decode_command, encode_command
from bourse.domain.commands import (
    AddSymbol,
    AmendOrder,
    CancelAll,
    CancelOrder,
    CancelReplace,
    Command,
    CreateAccount,
    DelistSymbol,
    Deposit,
    KeyChange,
    NewOrder,
    RejectedAdmin,
    SetAccountFees,
    SetAccountStatus,
    SetSymbolStatus,
    UpdateSymbol,
    WithdrawRequest,
    WithdrawSettle,
)
from bourse.domain.enums import (
    CancelReplaceMode,
    OrderType,
    Side,
    StpMode,
    SymbolStatus,
    TimeInForce,
)
from bourse.domain.markets import DEFAULT_MARKETS

pytestmark = pytest.mark.unit

amounts = st.integers(min_value=1, max_value=2**63 - 1)
optional_amounts = st.none() | amounts

new_orders = st.builds(
    NewOrder,
    request_id=st.text(min_size=1, max_size=40),
    ts=st.integers(min_value=0, max_value=2**53),
    account_id=st.integers(min_value=1, max_value=2**31),
    symbol=st.sampled_from([spec.symbol for spec in DEFAULT_MARKETS]),
    side=st.sampled_from(Side),
    type=st.sampled_from(OrderType),
    client_order_id=st.from_regex(r"\A[a-zA-Z0-9_-]{1,36}\Z"),
    quantity=optional_amounts,
    quote_order_qty=optional_amounts,
    price=optional_amounts,
    stop_price=optional_amounts,
    time_in_force=st.none() | st.sampled_from(TimeInForce),
    iceberg_qty=optional_amounts,
    stp_mode=st.none() | st.sampled_from(StpMode),
)


@given(new_orders)
def test_new_orders_round_trip(order: NewOrder) -> None:
    assert decode_command(encode_command(order)) == order


@pytest.mark.parametrize(
    "command",
    [
        CancelOrder("r1", 5, 7, "BTCUSDT", order_id=3, cancel_client_order_id="x"),
        CancelOrder("r2", 5, 7, "BTCUSDT", orig_client_order_id="abc"),
        CancelAll("r3", 5, 7, "ETHBTC"),
        AmendOrder("r3a", 5, 7, "ETHBTC", 10**6, "new-id", order_id=3),
        AmendOrder("r3b", 5, 7, "ETHBTC", 10**6, "new-id", None, "old-id", deadline=9),
        Deposit("r4", 5, 7, "BTC", 10**8),
        Deposit("r4", 5, 7, "BTC", 10**8, "tx-1", "arn:aws:iam::1:user/op"),
        WithdrawRequest("r5", 5, 7, "USDT", 1, "w1"),
        WithdrawSettle("r5", 5, "w1", "COMPLETED", "arn:x"),
        AddSymbol("r6", 5, DEFAULT_MARKETS[0]),
        AddSymbol("r6", 5, DEFAULT_MARKETS[0], "arn:x"),
        UpdateSymbol("r6", 5, DEFAULT_MARKETS[1], "arn:x"),
        SetSymbolStatus("r7", 5, "BTCUSDT", SymbolStatus.HALT),
        DelistSymbol("r7", 5, "BTCUSDT", "arn:x"),
        SetAccountFees("r8", 5, 7, 0, 100_000),
        CreateAccount("r8", 5),
        CreateAccount("r8", 5, 9, "arn:x"),
        SetAccountStatus("r8", 5, 9, True, "arn:x"),
        KeyChange("r8", 5, 9, "k", "CREATED", "arn:x"),
        RejectedAdmin("r8", 5, "DEPOSIT", "arn:x", "unsigned"),
        CancelReplace(
            "r9",
            5,
            CancelReplaceMode.STOP_ON_FAILURE,
            CancelOrder("r9", 5, 7, "BTCUSDT", order_id=1),
            NewOrder("r9", 5, 7, "BTCUSDT", Side.SELL, OrderType.MARKET, "c", quantity=5),
        ),
    ],
)
def test_every_command_type_round_trips(command: Command) -> None:
    assert decode_command(encode_command(command)) == command


@pytest.mark.parametrize(
    "record",
    [
        b"",
        b"not json",
        b"[]",
        b'{"type":"NEW_ORDER"}',
        b'{"type":"TELEPORT","body":{}}',
        b'{"type":"DEPOSIT","body":{"request_id":"r","ts":1,"account_id":1,"asset":"BTC"}}',
        # an amount as a float or a string is a type error, never a rounding
        b'{"type":"DEPOSIT","body":{"request_id":"r","ts":1,"account_id":1,"asset":"BTC","amount":1.5}}',
        b'{"type":"DEPOSIT","body":{"request_id":"r","ts":1,"account_id":1,"asset":"BTC","amount":"1"}}',
        b'{"type":"SET_SYMBOL_STATUS","body":{"request_id":"r","ts":1,"symbol":"X","status":"OPEN"}}',
    ],
)
def test_malformed_records_are_refused(record: bytes) -> None:
    with pytest.raises(CommandDecodeError):
        decode_command(record)
