"""Settlement checks for one fill against the record's ledger, and its statement lines; pure.

A fill (one side of one trade, as the trade-fills message carries it) settles when:
- the trade's ledger legs, fees included, net to zero per asset (debits = credits);
- the fill's own legs are there: the buyer receives qty base and pays quote, the seller the
  reverse, and a commission is one FEE debit of the fill's account and one credit of the fee
  account, in the asset the account received;
- the recorded fill (account_trades) says the same price, quantity and commission.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from bourse.record.rows import FEE_ACCOUNT, Fill

_FIELDS = (
    "seq", "ts", "symbol", "tradeId", "orderId", "accountId", "side", "isMaker", "price", "qty",
    "quoteQty", "commission", "commissionAsset",
)  # fmt: skip


def fill_from_message(body: dict[str, object]) -> Fill:
    """The fill a trade-fills message carries (``adapters.notify.fill_message`` wrote it)."""

    def num(key: str) -> int:
        value = body[key]
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{key} must be an integer")
        return value

    missing = [k for k in _FIELDS if k not in body]
    if missing:
        raise ValueError(f"fill message misses {', '.join(missing)}")
    side = body["side"]
    if side not in ("BUY", "SELL"):
        raise ValueError("side must be BUY or SELL")
    return Fill(
        num("seq"), num("ts"), str(body["symbol"]), num("tradeId"), num("orderId"),
        num("accountId"), str(side), bool(body["isMaker"]), num("price"), num("qty"),
        num("quoteQty"), num("commission"), str(body["commissionAsset"]),
    )  # fmt: skip


# (kind, account_id, asset, amount) of one ledger leg
Leg = tuple[str, int, str, int]
# (price, qty, quote_qty, commission, commission_asset) of the recorded fill
RecordedFill = tuple[int, int, int, int, str]


def check_fill(
    fill: Fill, base: str, quote: str, legs: list[Leg], recorded: RecordedFill | None
) -> list[str]:
    """The problems with ``fill`` (empty when it settles)."""
    problems: list[str] = []
    if not legs:
        return ["no ledger entries for the trade"]
    totals: dict[str, int] = defaultdict(int)
    for _, _, asset, amount in legs:
        totals[asset] += amount
    for asset, total in sorted(totals.items()):
        if total != 0:
            problems.append(f"ledger does not balance in {asset}: {total:+d}")
    have = Counter(legs)
    a = fill.account_id
    sign = 1 if fill.is_buyer else -1
    wanted: list[Leg] = [
        ("TRADE", a, base, sign * fill.qty),
        ("TRADE", a, quote, -sign * fill.quote_qty),
    ]
    if fill.commission > 0:
        wanted.append(("FEE", a, fill.commission_asset, -fill.commission))
        wanted.append(("FEE", FEE_ACCOUNT, fill.commission_asset, fill.commission))
    for leg in wanted:
        if have[leg] == 0:
            problems.append(f"missing ledger leg {leg[0]} account {leg[1]} {leg[2]} {leg[3]:+d}")
        else:
            have[leg] -= 1
    expected = (fill.price, fill.qty, fill.quote_qty, fill.commission, fill.commission_asset)
    if recorded is None:
        problems.append("fill not in account_trades")
    elif recorded != expected:
        problems.append(f"recorded fill {recorded} differs from notified {expected}")
    return problems


def statement_lines(fill: Fill, base: str, quote: str) -> list[tuple[str, int, int, int]]:
    """(asset, received, paid, fees) the fill adds to its account's daily statement."""
    got, gave = (base, quote) if fill.is_buyer else (quote, base)
    got_amount = fill.qty if fill.is_buyer else fill.quote_qty
    gave_amount = fill.quote_qty if fill.is_buyer else fill.qty
    lines: dict[str, list[int]] = {got: [got_amount, 0, 0], gave: [0, gave_amount, 0]}
    if fill.commission > 0:
        lines.setdefault(fill.commission_asset, [0, 0, 0])[2] += fill.commission
    return [(asset, r, p, f) for asset, (r, p, f) in lines.items()]
