"""The live market view in Redis: key names and readers (the matching service is the writer).

Every key carries a hash tag so it lands on one slot of a Redis cluster: all keys of a symbol
share ``{SYMBOL}``, a reply list has its own ``{requestId}``.

- ``book:{SYM}``   JSON ``{"lastUpdateId": u, "offset": o, "bids": [[price, qty], ...],
  "asks": [...]}``: up to ``BOOK_LEVELS`` displayed levels per side (bids descending, asks
  ascending), integers in 1e-8 units. ``lastUpdateId`` is the ``final_update_id`` of the last
  ``DepthUpdate`` the book includes, so a client can stitch it to the diff stream as Binance
  documents. ``offset`` is the commands offset the view reflects.
- ``bbo:{SYM}``    JSON ``{"lastUpdateId", "bidPrice", "bidQty", "askPrice", "askQty"}`` (0 when a
  side is empty): cheap for bookTicker.
- ``trade:{SYM}``  the last ``Trade`` event of the symbol (event codec envelope).
- ``reply:{requestId}``  a list holding the command's ``Reply`` event (event codec envelope),
  pushed once the batch's Kafka transaction has committed; it expires after the reply TTL.
- ``matching:{<commands topic>}:offset``  the commands offset the whole view reflects; writes
  carrying an older offset are ignored (a fenced instance cannot roll the view back).
"""

from __future__ import annotations

from typing import Any

import msgspec

from bourse.domain.event_codec import decode_event
from bourse.domain.events import Event

BOOK_LEVELS = 5_000  # GET /api/v3/depth?limit=5000, Binance's largest


def book_key(symbol: str) -> str:
    return f"book:{{{symbol}}}"


def bbo_key(symbol: str) -> str:
    return f"bbo:{{{symbol}}}"


def trade_key(symbol: str) -> str:
    return f"trade:{{{symbol}}}"


def reply_key(request_id: str) -> str:
    return f"reply:{{{request_id}}}"


def offset_key(commands_topic: str) -> str:
    return f"matching:{{{commands_topic}}}:offset"


class Book(msgspec.Struct, frozen=True):
    lastUpdateId: int  # the wire name, as Binance spells it
    offset: int
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]


_book_decoder = msgspec.json.Decoder(Book)


def read_book(client: Any, symbol: str, limit: int = 100) -> Book | None:
    raw = client.get(book_key(symbol))
    if raw is None:
        return None
    book = _book_decoder.decode(raw)
    if limit >= len(book.bids) and limit >= len(book.asks):
        return book
    return Book(book.lastUpdateId, book.offset, book.bids[:limit], book.asks[:limit])


def read_reply(client: Any, request_id: str, timeout_s: float) -> Event | None:
    """Wait up to ``timeout_s`` for a command's reply (BLPOP: each reply is read once)."""
    got = client.blpop([reply_key(request_id)], timeout=timeout_s)
    return None if got is None else decode_event(got[1])
