"""GET /api/v3/myPreventedMatches (Binance's "Query Prevented Matches"): the self-trades the
account's STP modes prevented, read from the record (``order_events``' TRADE_PREVENTION
reports, ``bourse.adapters.record_reads``). Pure: the record comes in ``Deps.history``.

Binance serves four combinations besides ``symbol``: ``preventedMatchId``; ``orderId``;
``orderId`` + ``fromPreventedMatchId``; ``orderId`` + ``fromPreventedMatchId`` + ``limit``.
Anything else is -1128. An order id finds the matches it took part in, as taker or maker.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from bourse.api.handlers import SIGNED_COMMON, USER_DATA, Deps, Request
from bourse.api.history import MAX_LIMIT, _symbol
from bourse.api.orders import check_known
from bourse.domain import errors
from bourse.domain.amounts import format_units
from bourse.record.views import PreventedMatchRow

PREVENTED_MATCHES_PARAMS = SIGNED_COMMON | {
    "symbol",
    "preventedMatchId",
    "orderId",
    "fromPreventedMatchId",
    "limit",
}
PREVENTED_MATCHES_COMBOS: tuple[frozenset[str], ...] = (
    frozenset({"preventedMatchId"}),
    frozenset({"orderId"}),
    frozenset({"orderId", "fromPreventedMatchId"}),
    frozenset({"orderId", "fromPreventedMatchId", "limit"}),
)
DEFAULT_LIMIT = 500
# Bourse has no trade groups: a match is prevented within one account, Binance's -1 "none".
NO_TRADE_GROUP = -1


@runtime_checkable
class PreventedMatchesView(Protocol):
    """The record's read (``RecordHistory.prevented_matches``), in prevented match id order."""

    def prevented_matches(
        self,
        account_id: int,
        symbol: str,
        *,
        prevented_match_id: int | None,
        order_id: int | None,
        from_id: int | None,
        limit: int,
    ) -> list[PreventedMatchRow]: ...


def prevented_matches_weight(params: Mapping[str, str]) -> int:
    """Binance's weight: 20 by ``orderId``, 2 by ``preventedMatchId``."""
    return 20 if "orderId" in params else 2


def prevented_match(row: PreventedMatchRow) -> dict[str, Any]:
    return {
        "symbol": row.symbol,
        "preventedMatchId": row.prevented_match_id,
        "takerOrderId": row.taker_order_id,
        "makerSymbol": row.symbol,
        "makerOrderId": row.maker_order_id,
        "tradeGroupId": NO_TRADE_GROUP,
        "selfTradePreventionMode": row.stp_mode,
        "price": format_units(row.price),
        "makerPreventedQuantity": format_units(row.maker_prevented_qty),
        "transactTime": row.ts,
    }


def my_prevented_matches(req: Request, deps: Deps) -> list[dict[str, Any]]:
    caller, params = req.signed(deps, USER_DATA)
    check_known(params, PREVENTED_MATCHES_PARAMS)
    symbol = _symbol(deps, params)
    sent = frozenset(
        n for n in ("preventedMatchId", "orderId", "fromPreventedMatchId", "limit")
        if n in params.names()
    )  # fmt: skip
    if sent not in PREVENTED_MATCHES_COMBOS:
        raise errors.BAD_COMBO_ERROR
    limit = params.optional_int("limit", minimum=1)
    history = deps.history
    if not isinstance(history, PreventedMatchesView):
        raise RuntimeError("this function has no prevented matches view (Deps.history)")
    rows = history.prevented_matches(
        caller.account_id,
        symbol,
        prevented_match_id=params.optional_int("preventedMatchId"),
        order_id=params.optional_int("orderId"),
        from_id=params.optional_int("fromPreventedMatchId"),
        limit=DEFAULT_LIMIT if limit is None else min(limit, MAX_LIMIT),
    )
    return [prevented_match(r) for r in rows]
