"""Binance's SIGNED security: the documented vectors, and every way a request can fail."""

from __future__ import annotations

import pytest

from bourse.api.signing import check_timestamp, sign, split_signature, verify_signature
from bourse.domain.errors import BinanceError

pytestmark = pytest.mark.unit

# The example key and requests from Binance's Spot API documentation.
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
BODY = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
ALL_IN_ONE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
MIXED = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"


def test_binance_documented_signatures() -> None:
    assert sign(SECRET, f"{QUERY}&{BODY}") == ALL_IN_ONE
    # Query string and body are concatenated as they are, with no '&' between them.
    assert sign(SECRET, QUERY + BODY) == MIXED


@pytest.mark.parametrize(
    ("query", "body"),
    [
        (f"{QUERY}&{BODY}&signature={ALL_IN_ONE}", ""),
        ("", f"{QUERY}&{BODY}&signature={ALL_IN_ONE}"),
        (QUERY, f"{BODY}&signature={MIXED}"),
        (f"{QUERY}&signature={MIXED}", BODY),
    ],
)
def test_valid_signatures_anywhere(query: str, body: str) -> None:
    verify_signature(SECRET, query, body)


def test_uppercase_hex_is_accepted() -> None:
    verify_signature(SECRET, f"{QUERY}&{BODY}&signature={ALL_IN_ONE.upper()}", "")


@pytest.mark.parametrize(
    ("query", "body", "code"),
    [
        (f"{QUERY}&{BODY}", "", -1102),  # no signature
        (f"{QUERY}&{BODY}&signature=", "", -1102),
        (f"{QUERY}&{BODY}&signature={ALL_IN_ONE}&signature={ALL_IN_ONE}", "", -1101),
        (f"{QUERY}&{BODY}&signature={'0' * 64}", "", -1022),
        (f"{QUERY}&{BODY.replace('0.1', '0.2')}&signature={ALL_IN_ONE}", "", -1022),
        (f"{QUERY}&{BODY}&signature=nothex", "", -1022),
    ],
)
def test_bad_signatures(query: str, body: str, code: int) -> None:
    with pytest.raises(BinanceError) as caught:
        verify_signature(SECRET, query, body)
    assert caught.value.code == code


def test_wrong_secret_is_invalid() -> None:
    with pytest.raises(BinanceError) as caught:
        verify_signature("x" * 64, f"{QUERY}&{BODY}&signature={ALL_IN_ONE}", "")
    assert caught.value.code == -1022
    assert caught.value.msg == "Signature for this request is not valid."


def test_split_keeps_the_payload_byte_for_byte() -> None:
    payload, signature = split_signature("a=%20b&signature=ab&c=1", "")
    assert (payload, signature) == ("a=%20b&c=1", "ab")


@pytest.mark.parametrize(
    ("timestamp", "window", "server", "ok"),
    [
        (10_000, None, 10_000, True),
        (10_000, None, 15_000, True),  # exactly recvWindow old
        (10_000, None, 15_001, False),
        (10_999, None, 10_000, True),  # less than 1 s ahead
        (11_000, None, 10_000, False),  # 1 s ahead
        (10_000, 60_000, 70_000, True),
        (10_000, 60_001, 10_000, False),  # recvWindow over the maximum
    ],
)
def test_timestamp_window(timestamp: int, window: int | None, server: int, ok: bool) -> None:
    if ok:
        check_timestamp(timestamp, window, server)
    else:
        with pytest.raises(BinanceError) as caught:
            check_timestamp(timestamp, window, server)
        assert caught.value.code in (-1021, -1131)
