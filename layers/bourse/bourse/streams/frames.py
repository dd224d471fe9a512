"""API Gateway's limit on one WebSocket message, and how each stream stays under it.

API Gateway rejects a ``PostToConnection`` payload over 128 KB, so no message may be bigger;
a stream whose message could grow past it is split the way its semantics allow:

- the diff depth stream into several diffs with contiguous U/u (a client following Binance's
  sync procedure applies them one after the other and ends on the same book);
- ``!miniTicker@arr`` into several arrays;
- every other stream has a bounded size (at most 20 levels, one order, one account's changed
  assets — an account with thousands of assets changed by one command is the exception and
  is split into several outboundAccountPosition messages, each a part of the account).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from bourse.domain.events import DepthUpdate
from bourse.streams import payloads

MAX_MESSAGE_BYTES = 128 * 1024
# Room for the combined-stream envelope {"stream":"<name>","data":...} around the payload.
ENVELOPE_ROOM = 256
BUDGET = MAX_MESSAGE_BYTES - ENVELOPE_ROOM
# A level is ["<price>","<qty>"], and both numbers are at most 28 characters (19 digits of
# an int64 plus the point and 8 decimals); the header has the symbol and four integers.
LEVEL_BYTES = 2 * 28 + 8
HEADER_BYTES = 160


def _levels_bytes(ev: DepthUpdate) -> int:
    return (len(ev.bids) + len(ev.asks)) * LEVEL_BYTES


def depth_diffs(
    symbol: str, updates: Sequence[DepthUpdate], budget: int = BUDGET
) -> Iterator[dict[str, Any]]:
    """The diff stream's messages for a run of consecutive ``DepthUpdate`` of one symbol:
    as few as fit the budget, each merging whole updates (later quantity wins; U of the
    first, u of the last). An update too big on its own is cut into pieces; its update ids
    advance by one per level listed (bids then asks), so each piece gets its own contiguous
    U..u and the pieces together are the update."""
    i = 0
    while i < len(updates):
        ev = updates[i]
        if HEADER_BYTES + _levels_bytes(ev) > budget:
            yield from _cut(symbol, ev, budget)
            i += 1
            continue
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        size = HEADER_BYTES
        first, last = ev, ev
        while i < len(updates) and size + _levels_bytes(updates[i]) <= budget:
            last = updates[i]
            bids.update(last.bids)
            asks.update(last.asks)
            size += _levels_bytes(last)
            i += 1
        yield payloads.depth_update(
            symbol,
            last.ts,
            first.first_update_id,
            last.final_update_id,
            sorted(bids.items(), reverse=True),
            sorted(asks.items()),
        )


def _cut(symbol: str, ev: DepthUpdate, budget: int) -> Iterator[dict[str, Any]]:
    per = max(1, (budget - HEADER_BYTES) // LEVEL_BYTES)
    sides = [(True, level) for level in ev.bids] + [(False, level) for level in ev.asks]
    for start in range(0, len(sides), per):
        piece = sides[start : start + per]
        yield payloads.depth_update(
            symbol,
            ev.ts,
            ev.first_update_id + start,
            ev.first_update_id + start + len(piece) - 1,
            [level for is_bid, level in piece if is_bid],
            [level for is_bid, level in piece if not is_bid],
        )


def chunks(items: Sequence[bytes], budget: int = BUDGET) -> Iterator[list[bytes]]:
    """Encoded array items grouped so that each JSON array ``[a,b,...]`` fits the budget."""
    group: list[bytes] = []
    size = 2
    for item in items:
        if group and size + len(item) + 1 > budget:
            yield group
            group, size = [], 2
        group.append(item)
        size += len(item) + 1
    if group:
        yield group
