"""Rate-limit counters in DynamoDB (the RateLimitsTable: key ``pk``, TTL attribute
``expiresAt``), one item per IP and one per account, each counting its fixed windows.

Every request pays one UpdateItem: ``ADD`` to the counters, on the condition that the item still
holds the current windows (``w<name> = :window``), returning the new values. Only the first
request of a new window fails that condition; it then resets the stale counters with a second
UpdateItem, conditioned on the windows it saw, so two containers crossing the boundary at once
cannot both reset (the loser retries the ADD). An item per key rather than per key and window
lets the IP's item also carry its ban, so the ban check costs no extra read.

Failing open: when DynamoDB does not answer, the request goes through with a logged warning.
The stage throttling in template.yaml still bounds the traffic, while failing closed would turn a
DynamoDB outage into a trading outage, cancels included. The client here has short timeouts and
no retries for the same reason: a slow limiter must not hold every request.

``scope`` prefixes every key (the commands topic), so that exchanges sharing the table (test
exchanges on their own topics, locally) count apart.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cache
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bourse.adapters import aws
from bourse.api.rate_limits import (
    BAN_MEMORY_MS,
    ORDERS_10S,
    ORDERS_DAY,
    SECOND_MS,
    WEIGHT_WINDOW,
    IpUsage,
    Limits,
    OrderCounts,
    Window,
)
from bourse.settings import Settings

log = logging.getLogger("bourse.rate_limits")
_ATTEMPTS = 4  # window resets raced by other containers; more is a fault, not contention
_CHECK_FAILED = "ConditionalCheckFailedException"
Item = dict[str, Any] | None


def _failed_condition(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == _CHECK_FAILED


def _n(item: Mapping[str, Any], name: str, default: int = 0) -> int:
    value = item.get(name, {}).get("N")
    return default if value is None else int(value)


class DynamoRateLimits:
    def __init__(self, table: str, scope: str, limits: Limits) -> None:
        self.table = table
        self.scope = scope
        self.limits = limits

    def _client(self) -> Any:
        return aws.fast_client("dynamodb")

    # -- the every-request path (fails open)

    def add_weight(self, ip: str, weight: int, now_ms: int) -> IpUsage | None:
        """The IP's usage with ``weight`` counted; None when DynamoDB is unreachable."""
        item = self._count(f"{self.scope}|ip|{ip}", {"m": WEIGHT_WINDOW}, weight, now_ms)
        if item is None:
            return None
        return IpUsage(_n(item, "cm"), _n(item, "banUntil"), _n(item, "bans"))

    def add_order(self, account_id: int, now_ms: int) -> OrderCounts | None:
        windows = {"s": ORDERS_10S, "d": ORDERS_DAY}
        item = self._count(f"{self.scope}|orders|{account_id}", windows, 1, now_ms)
        if item is None:
            return None
        return OrderCounts(_n(item, "cs"), _n(item, "cd"))

    def ban(self, ip: str, until_ms: int, bans: int, now_ms: int) -> int:
        """Record a ban (the ``bans``-th); the ban in force when another container banned the
        same IP a moment earlier. Fails open to ``until_ms`` (the 418 is still answered)."""
        try:
            self._client().update_item(
                TableName=self.table,
                Key={"pk": {"S": f"{self.scope}|ip|{ip}"}},
                UpdateExpression="SET banUntil = :until, bans = :bans, expiresAt = :exp",
                ConditionExpression="attribute_not_exists(banUntil) OR banUntil <= :now",
                ExpressionAttributeValues={
                    ":until": {"N": str(until_ms)},
                    ":bans": {"N": str(bans)},
                    ":exp": {"N": str((until_ms + BAN_MEMORY_MS) // SECOND_MS)},
                    ":now": {"N": str(now_ms)},
                },
            )
        except ClientError as exc:
            if not _failed_condition(exc):
                log.warning("rate limits: ban of %s not stored: %s", ip, exc)
                return until_ms
            current = self._get(f"{self.scope}|ip|{ip}")
            return _n(current or {}, "banUntil", until_ms)
        except BotoCoreError as exc:
            log.warning("rate limits: ban of %s not stored: %s", ip, exc)
        return until_ms

    # -- reads (GET /api/v3/rateLimit/order: errors propagate)

    def order_counts(self, account_id: int, now_ms: int) -> OrderCounts:
        item = self._get(f"{self.scope}|orders|{account_id}") or {}

        def current(name: str, window: Window) -> int:
            return _n(item, f"c{name}") if _n(item, f"w{name}", -1) == window.start(now_ms) else 0

        return OrderCounts(current("s", ORDERS_10S), current("d", ORDERS_DAY))

    def _get(self, pk: str) -> dict[str, Any] | None:
        answer = self._client().get_item(
            TableName=self.table, Key={"pk": {"S": pk}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    # -- the counting itself

    def _count(
        self, pk: str, windows: Mapping[str, Window], amount: int, now_ms: int
    ) -> dict[str, Any] | None:
        """Add ``amount`` to counter ``c<name>`` of each window ``w<name>``; the item after."""
        starts = {name: w.start(now_ms) for name, w in windows.items()}
        try:
            for _ in range(_ATTEMPTS):
                done, item = self._add(pk, starts, amount)
                if done:
                    return item
                done, item = self._reset(pk, windows, starts, amount, item, now_ms)
                if done:
                    return item
        except (BotoCoreError, ClientError) as exc:
            log.warning("rate limits: DynamoDB unavailable, request let through: %s", exc)
            return None
        log.warning("rate limits: %s kept changing windows, request let through", pk)
        return None

    def _add(self, pk: str, starts: Mapping[str, int], amount: int) -> tuple[bool, Item]:
        """The common case: (True, item after); (False, item before) when a window moved."""
        values = {f":w{name}": {"N": str(start)} for name, start in starts.items()}
        values[":n"] = {"N": str(amount)}
        try:
            answer = self._client().update_item(
                TableName=self.table,
                Key={"pk": {"S": pk}},
                UpdateExpression="ADD " + ", ".join(f"c{name} :n" for name in starts),
                ConditionExpression=" AND ".join(f"w{name} = :w{name}" for name in starts),
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not _failed_condition(exc):
                raise
            old: Item = exc.response.get("Item")  # type: ignore[assignment]
            return False, old if old is not None else self._get(pk)
        after: Item = answer.get("Attributes", {})
        return True, after

    def _reset(
        self,
        pk: str,
        windows: Mapping[str, Window],
        starts: Mapping[str, int],
        amount: int,
        old: Mapping[str, Any] | None,
        now_ms: int,
    ) -> tuple[bool, Item]:
        """Start the moved windows at ``amount`` and add to the others, on the condition that
        the item is still what ``old`` was; (False, None) when another container got there
        first."""
        old = old or {}
        sets, adds, conditions = [], [], []
        values: dict[str, Any] = {":n": {"N": str(amount)}}
        for name, start in starts.items():
            seen = _n(old, f"w{name}", -1)
            if seen == start:
                adds.append(f"c{name} :n")
            else:
                sets += [f"w{name} = :w{name}", f"c{name} = :n"]
                values[f":w{name}"] = {"N": str(start)}
            if seen == -1:
                conditions.append(f"attribute_not_exists(w{name})")
            else:
                conditions.append(f"w{name} = :seen{name}")
                values[f":seen{name}"] = {"N": str(seen)}
        ban_until = _n(old, "banUntil")
        expired = _n(old, "expiresAt") * SECOND_MS <= now_ms
        # Past its TTL but not yet swept: forget the old bans, as the sweep would have.
        if expired and "bans" in old:
            sets.append("bans = :zero")
            values[":zero"] = {"N": "0"}
            ban_until = 0
        window_end = max(w.end(now_ms) for w in windows.values())
        expires = max(window_end, ban_until + BAN_MEMORY_MS if ban_until else 0)
        sets.append("expiresAt = :exp")
        values[":exp"] = {"N": str(expires // SECOND_MS + 1)}
        expression = "SET " + ", ".join(sets)
        if adds:
            expression += " ADD " + ", ".join(adds)
        if expired and ban_until == 0 and "banUntil" in old:
            expression += " REMOVE banUntil"
        try:
            answer = self._client().update_item(
                TableName=self.table,
                Key={"pk": {"S": pk}},
                UpdateExpression=expression,
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if not _failed_condition(exc):
                raise
            return False, None
        after: Item = answer.get("Attributes", {})
        return True, after


@cache
def rate_limit_store(s: Settings) -> DynamoRateLimits:
    limits = Limits(
        weight_per_minute=s.rate_limit_weight_per_minute,
        orders_per_10s=s.rate_limit_orders_per_10s,
        orders_per_day=s.rate_limit_orders_per_day,
    )
    return DynamoRateLimits(s.rate_limits_table, s.commands_topic, limits)
