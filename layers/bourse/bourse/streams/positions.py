"""Where every stream message stands in what the broadcaster published: its position
(docs/streams.md, "Resumable streams"). Pure: no I/O.

A position is ``(seq, n)``: ``seq`` is the seq of the last event of the broadcaster batch that
published the message (every event the message reflects is at or before it), ``n`` its place
among that batch's messages: the market messages in publishing order, then each account's user
data in event order. Batches are published in seq order, so positions order every message of
every stream and account exactly as the broadcaster sent them; a connection's messages are a
subsequence of that order, and merging its streams' logs by position gives them back in the
order the connection received them.

A connection that asks for positions (``withSeq=true``, or ``resumeFrom``) receives every
message in one envelope, market and user data alike::

    {"stream": "btcusdt@trade", "data": {...Binance's payload...}, "seq": 9071, "n": 3}

(user data: ``stream`` is the listen key). ``resumeFrom=<seq>-<n>`` on a new connection asks
for every message after that position; ``resumeFrom=<seq>`` for every message after the whole
batch ``seq``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import msgspec

Position = tuple[int, int]
# After every message of a batch: a batch never holds this many.
END_OF_BATCH = 2**31 - 1
_POSITION_RE = re.compile(r"\A(0|[1-9][0-9]{0,18})(?:-(0|[1-9][0-9]{0,9}))?\Z")
_encode = msgspec.json.Encoder().encode


class InvalidPosition(ValueError):
    """Not ``<seq>`` or ``<seq>-<n>``."""


def parse_position(text: str) -> Position:
    match = _POSITION_RE.match(text)
    if match is None:
        raise InvalidPosition(text)
    seq, n = match.groups()
    position = (int(seq), int(n) if n is not None else END_OF_BATCH)
    if position[1] > END_OF_BATCH:
        raise InvalidPosition(text)
    return position


def entry_id(position: Position) -> str:
    """The position as a Redis stream entry id (``<seq>-<n>``)."""
    return f"{position[0]}-{position[1]}"


def from_entry_id(text: str | bytes) -> Position:
    raw = text.decode() if isinstance(text, bytes) else text
    seq, _, n = raw.partition("-")
    return int(seq), int(n)


def market_log(stream: str) -> str:
    """The log of a market stream (its messages' payloads, by position)."""
    return f"s:{stream}"


def account_log(account_id: int) -> str:
    """The log of an account's user data."""
    return f"a:{account_id}"


def numbered(
    market: list[tuple[str, bytes]], user: dict[int, list[bytes]]
) -> Iterator[tuple[int, str, bytes]]:
    """A batch's messages with their ``n``: (n, log, payload), in publishing order."""
    n = 0
    for stream, data in market:
        yield n, market_log(stream), data
        n += 1
    for account_id, items in user.items():
        log = account_log(account_id)
        for data in items:
            yield n, log, data
            n += 1


def positioned_frame(stream: str, data: bytes, position: Position) -> bytes:
    """The envelope of a message to a connection that asked for positions."""
    return _encode(
        {"stream": stream, "data": msgspec.Raw(data), "seq": position[0], "n": position[1]}
    )


def positioned_event(subscription_id: int, data: bytes, position: Position) -> bytes:
    """A WebSocket API subscription's event with its position (``session.resume``)."""
    return _encode(
        {
            "subscriptionId": subscription_id,
            "event": msgspec.Raw(data),
            "seq": position[0],
            "n": position[1],
        }
    )
