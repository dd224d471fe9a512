"""What a retry learns about a first attempt that was never answered (docs/api.md, "Retries").

A newClientOrderId claim whose request gave up (-1007) or died has no answer on record. Its
command may still be on its way, so for a while a retry can only wait for that command's reply.
That while is bounded: the command carries its request's deadline (``timestamp + recvWindow``)
and the engine refuses it once the matching service's clock has passed it (-1021,
docs/engine.md, "Late commands"). The first request's ``timestamp`` was at most
``MAX_AHEAD_MS`` after the claim and its ``recvWindow`` at most ``MAX_RECV_WINDOW``, so
``SETTLE_MS`` after the claim (plus the clocks' skew) the command has either executed, leaving
its order in the live view, the recently closed orders or the record, or it never will.

Once settled, a retry looks the first attempt's order up by client order id (open, then
recently closed, then the record; created no earlier than the claim): found, it is the answer;
not found, the first attempt placed nothing and the retry takes the key over.
"""

from __future__ import annotations

from typing import Any

from bourse.api import account as account_shapes
from bourse.api import record_shapes
from bourse.api.orders import RespType
from bourse.api.ports import HistoryView, MarketView, RecentView
from bourse.api.signing import MAX_AHEAD_MS, MAX_RECV_WINDOW
from bourse.domain.commands import NewOrder
from bourse.domain.enums import STOP_TYPES

# How far apart the API's hosts' and the matching service's clocks may be, with room for the
# batch that was running at the deadline to reach the live view.
CLOCK_SKEW_MS = 5_000
SETTLE_MS = MAX_AHEAD_MS + MAX_RECV_WINDOW + CLOCK_SKEW_MS

_STOP_TYPE_NAMES = frozenset(str(t) for t in STOP_TYPES)
_ACK_FIELDS = ("symbol", "orderId", "orderListId", "clientOrderId")
_RESULT_FIELDS = (
    "price",
    "origQty",
    "executedQty",
    "origQuoteOrderQty",
    "cummulativeQuoteQty",
    "status",
    "timeInForce",
    "type",
    "side",
)


def settled(claimed_at_ms: int | None, now_ms: int) -> bool:
    """Whether an unanswered claim's command has executed or never will. A claim without its
    time (written before claims recorded it) never settles: it expires with its item."""
    return claimed_at_ms is not None and now_ms > claimed_at_ms + SETTLE_MS


def placed_order(
    view: MarketView,
    recent: RecentView | None,
    history: HistoryView | None,
    order: NewOrder,
    since_ms: int,
) -> dict[str, Any] | None:
    """The order a first attempt of ``order`` placed, as GET /api/v3/order shows it: the
    account's order with its client id, side and type, created no earlier than ``since_ms``
    (an older one with the same client id was an earlier order, closed before the claim)."""
    cid = order.client_order_id
    for result in view.open_orders(order.account_id, order.symbol):
        if result.order.client_order_id == cid:
            return _if_ours(account_shapes.order_query(result), order, since_ms)
    row = None
    if recent is not None:
        row = recent.closed_order(order.account_id, order.symbol, None, cid)
    if row is None and history is not None:
        row = history.order(order.account_id, order.symbol, None, cid)
    return None if row is None else _if_ours(record_shapes.order(row), order, since_ms)


def _if_ours(found: dict[str, Any], order: NewOrder, since_ms: int) -> dict[str, Any] | None:
    same = found["side"] == str(order.side) and found["type"] == str(order.type)
    return found if same and found["time"] >= since_ms else None


def as_placed(found: dict[str, Any], resp_type: RespType) -> dict[str, Any]:
    """An order found by ``placed_order`` in the shape POST /api/v3/order answers, as it is
    now (``transactTime``: when it was placed). FULL has no fills: the trades of an order
    found this way are GET /api/v3/myTrades?orderId=..."""
    body = {name: found[name] for name in _ACK_FIELDS}
    body["transactTime"] = found["time"]
    if resp_type is RespType.ACK:
        return body
    body.update({name: found[name] for name in _RESULT_FIELDS})
    if found["type"] in _STOP_TYPE_NAMES:
        body["stopPrice"] = found["stopPrice"]
    if found["icebergQty"] != "0.00000000":
        body["icebergQty"] = found["icebergQty"]
    body["workingTime"] = found["workingTime"]
    body["selfTradePreventionMode"] = found["selfTradePreventionMode"]
    if resp_type is RespType.FULL:
        body["fills"] = []
    return body
