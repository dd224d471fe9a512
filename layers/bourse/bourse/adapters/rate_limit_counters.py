"""Rate-limit counters in Redis: every request's REQUEST_WEIGHT and, on order placement, the
account's ORDERS counts, in one pipelined round trip (``count``).

One key per counter and fixed window (``rl:{<scope>|ip|<ip>}:m:<window start>``), ``INCRBY``
then ``PEXPIRE`` to the window's end: a new window is a new key, so no request ever resets a
counter and two containers crossing a boundary together cannot lose or double a count. The
key expires a second after its window ends (clocks of containers differ by milliseconds, and a
request a little late must not re-create a window's key for ever).

The running ban of an IP is mirrored here too (``rl:{<scope>|ip|<ip>}:ban``, a hash with
``until`` and ``bans``, kept ``BAN_MEMORY_MS`` after the ban ends), so that the ban check rides
the same round trip as the weight; the record of bans is DynamoDB's
(``bourse.adapters.rate_limit_store``).

Keys carry hash tags by IP or account: the pipeline is not a transaction, so on a Redis cluster
its commands may go to different shards, and each key's commands stay together.
"""

from __future__ import annotations

from typing import Any

from bourse.api.rate_limits import (
    BAN_MEMORY_MS,
    ORDERS_10S,
    ORDERS_DAY,
    SECOND_MS,
    WEIGHT_WINDOW,
    IpUsage,
    OrderCounts,
    Window,
)

_GRACE_MS = SECOND_MS  # how long a window's key outlives the window


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


class RedisCounters:
    """``scope`` prefixes every key (the commands topic), so that exchanges sharing one Redis
    (test exchanges, locally) count apart. Redis errors propagate: the caller fails open."""

    def __init__(self, client: Any, scope: str) -> None:
        self.client = client
        self.scope = scope

    def _ip(self, ip: str) -> str:
        return f"rl:{{{self.scope}|ip|{ip}}}"

    def _account(self, account_id: int) -> str:
        return f"rl:{{{self.scope}|orders|{account_id}}}"

    def _add(self, pipe: Any, key: str, window: Window, amount: int, now_ms: int) -> None:
        start = window.start(now_ms)
        name = f"{key}:{start}"
        pipe.incrby(name, amount)
        # Relative to the request's clock, not Redis's: the window is the request's.
        pipe.pexpire(name, start + window.interval_ms + _GRACE_MS - now_ms)

    def count(
        self, ip: str | None, weight: int, account_id: int | None, now_ms: int
    ) -> tuple[IpUsage | None, OrderCounts | None]:
        """Add ``weight`` to the IP's minute (with ``ip``) and one order to the account's 10
        seconds and day (with ``account_id``): the counts after, and the IP's ban, in one round
        trip."""
        pipe = self.client.pipeline(transaction=False)
        if ip is not None:
            ip_key = self._ip(ip)
            self._add(pipe, f"{ip_key}:m", WEIGHT_WINDOW, weight, now_ms)
            pipe.hmget(f"{ip_key}:ban", "until", "bans")
        if account_id is not None:
            account = self._account(account_id)
            self._add(pipe, f"{account}:s", ORDERS_10S, 1, now_ms)
            self._add(pipe, f"{account}:d", ORDERS_DAY, 1, now_ms)
        answers = pipe.execute()
        usage = orders = None
        if ip is not None:
            used, _, (until, bans) = answers[:3]
            usage = IpUsage(int(used), _int(until), _int(bans))
            answers = answers[3:]
        if account_id is not None:
            orders = OrderCounts(int(answers[0]), int(answers[2]))
        return usage, orders

    def order_counts(self, account_id: int, now_ms: int) -> OrderCounts:
        account = self._account(account_id)
        ten, day = self.client.mget(
            f"{account}:s:{ORDERS_10S.start(now_ms)}", f"{account}:d:{ORDERS_DAY.start(now_ms)}"
        )
        return OrderCounts(_int(ten), _int(day))

    def mirror_ban(self, ip: str, until_ms: int, bans: int, now_ms: int) -> None:
        """The IP's running ban (and how many it had), as the record holds it."""
        key = f"{self._ip(ip)}:ban"
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(key, mapping={"until": until_ms, "bans": bans})
        pipe.pexpire(key, until_ms + BAN_MEMORY_MS - now_ms)
        pipe.execute()
