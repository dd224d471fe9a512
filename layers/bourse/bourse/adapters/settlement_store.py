"""Settlement's PostgreSQL side: read a fill's ledger legs, record the verdict once, keep the
daily statements. One transaction per fill; a fill already settled is a no-op."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import psycopg

from bourse.adapters import postgres
from bourse.record.rows import Fill
from bourse.record.settlement import Leg, RecordedFill, check_fill, statement_lines

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class NotRecorded(RuntimeError):
    """The fill's trade is not in the record (yet): the message must come back later."""


# Called inside the transaction with the problems of a fill that did not reconcile, before
# the commit: an alert that fails to go out rolls the verdict back, so it is retried.
OnBreak = Callable[[Fill, list[str]], None]


class SettlementStore:
    def __init__(self, dsn: str) -> None:
        self._pg = postgres.ReusedConnection(dsn)

    def connection(self) -> psycopg.Connection[tuple[object, ...]]:
        return self._pg.get()

    def close(self) -> None:
        self._pg.close()

    def settle(self, fill: Fill, on_break: OnBreak | None = None) -> list[str] | None:
        """The fill's problems (empty: it reconciles), or None if it was settled before."""
        try:
            return self._settle(fill, on_break)
        except psycopg.OperationalError:
            self.close()
            raise

    def _settle(self, fill: Fill, on_break: OnBreak | None) -> list[str] | None:
        conn = self.connection()
        with conn.transaction(), conn.cursor() as cur:
            row = cur.execute(
                "SELECT s.base_asset, s.quote_asset FROM trades t JOIN symbols s USING (symbol)"
                " WHERE t.symbol = %s AND t.trade_id = %s",
                (fill.symbol, fill.trade_id),
            ).fetchone()
            if row is None:
                raise NotRecorded(f"{fill.symbol} trade {fill.trade_id} is not in the record")
            base, quote = str(row[0]), str(row[1])
            legs: list[Leg] = [
                (str(k), int(str(a)), str(s), int(str(m)))
                for k, a, s, m in cur.execute(
                    "SELECT kind, account_id, asset, amount FROM ledger_entries"
                    " WHERE symbol = %s AND trade_id = %s",
                    (fill.symbol, fill.trade_id),
                ).fetchall()
            ]
            got = cur.execute(
                "SELECT price, qty, quote_qty, commission, commission_asset FROM account_trades"
                " WHERE account_id = %s AND symbol = %s AND trade_id = %s AND is_buyer = %s",
                (fill.account_id, fill.symbol, fill.trade_id, fill.is_buyer),
            ).fetchone()
            recorded: RecordedFill | None = (
                None
                if got is None
                else (int(str(got[0])), int(str(got[1])), int(str(got[2])), int(str(got[3])),
                      str(got[4]))
            )  # fmt: skip
            problems = check_fill(fill, base, quote, legs, recorded)
            inserted = cur.execute(
                "INSERT INTO settled_fills (symbol, trade_id, is_buyer, account_id, seq, ok)"
                " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
                (fill.symbol, fill.trade_id, fill.is_buyer, fill.account_id, fill.seq,
                 not problems),
            ).fetchone()  # fmt: skip
            if inserted is None:
                return None
            day = (_EPOCH + dt.timedelta(milliseconds=fill.ts)).date()
            cur.executemany(
                "INSERT INTO daily_statements (account_id, day, asset, received, paid, fees,"
                " fills) VALUES (%s, %s, %s, %s, %s, %s, 1)"
                " ON CONFLICT (account_id, day, asset) DO UPDATE SET"
                " received = daily_statements.received + EXCLUDED.received,"
                " paid = daily_statements.paid + EXCLUDED.paid,"
                " fees = daily_statements.fees + EXCLUDED.fees,"
                " fills = daily_statements.fills + 1",
                [(fill.account_id, day, *line) for line in statement_lines(fill, base, quote)],
            )
            if problems:
                cur.executemany(
                    "INSERT INTO settlement_breaks (symbol, trade_id, is_buyer, account_id,"
                    " problem) VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(fill.symbol, fill.trade_id, fill.is_buyer, fill.account_id, p)
                     for p in problems],
                )  # fmt: skip
                if on_break is not None:
                    on_break(fill, problems)
            return problems
