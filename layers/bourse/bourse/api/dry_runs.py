"""The answer to ``POST /api/v3/order/test`` with ``dryRun=true`` (docs/api.md, "Dry runs"):
Binance's FULL order response for what the order would do now, plus what Bourse adds — the
seq the prediction is as of, the self-trades STP would prevent, and the account's balances of
the symbol's assets afterwards. The engine computes all of it (``bourse.engine.dry_run``);
this module only shapes it."""

from __future__ import annotations

import json
from typing import Any

from bourse.api.responses import order_full
from bourse.domain.amounts import format_units
from bourse.domain.errors import BinanceError
from bourse.domain.events import Reply


def dry_run_response(reply: Reply) -> dict[str, Any]:
    if reply.code != 0 or not reply.parts or reply.parts[0].result is None:
        raise BinanceError(reply.code, reply.msg)
    detail = json.loads(reply.detail)
    body = order_full(reply.parts[0].result, reply.ts)
    body["dryRun"] = True
    body["asOfSeq"] = detail["asOfSeq"]
    body["preventedMatches"] = [
        {
            "preventedMatchId": p["preventedMatchId"],
            "takerOrderId": p["takerOrderId"],
            "makerOrderId": p["makerOrderId"],
            "price": format_units(p["price"]),
            "makerPreventedQuantity": format_units(p["makerPreventedQuantity"]),
            "takerPreventedQuantity": format_units(p["takerPreventedQuantity"]),
            "selfTradePreventionMode": p["selfTradePreventionMode"],
        }
        for p in detail["preventedMatches"]
    ]
    body["balancesAfter"] = [
        {"asset": b["asset"], "free": format_units(b["free"]), "locked": format_units(b["locked"])}
        for b in detail["balancesAfter"]
    ]
    return body
