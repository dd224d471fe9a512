"""The rate limiter's store (``bourse.api.ports.RateLimiter``): the counters every request
touches in Redis (``bourse.adapters.rate_limit_counters``, one pipelined round trip per
request), the bans in DynamoDB (the RateLimitsTable: key ``pk``, TTL attribute ``expiresAt``).

Why the counters left DynamoDB: they were one or two conditional UpdateItems on every request
(about half of an unloaded order's time through the local gateway, and 5-10 ms of a p99 budget
on AWS), while Redis (ElastiCache, already on every request's path for the key revocation check
and the live view) counts in well under a millisecond.

Bans stay DynamoDB's: a ban is written there first, with a condition (no ban running), so two
containers banning the same IP at once agree on one ban; it is then mirrored into Redis, where
the per-request check reads it in the counters' round trip. Reading the ban from DynamoDB
through a cache instead would let a banned IP through for the cache's life once a new minute
starts (its counter is fresh); the mirror costs nothing per request. Should Redis lose the
mirror, the IP is refused again as soon as its weight is over the limit once more: the
conditional write then finds the ban still running and mirrors it again.

Failing open: when Redis does not answer, the request goes through with a logged warning. The
stage throttling in template.yaml still bounds the traffic, while failing closed would turn a
Redis outage into a trading outage, cancels included (the orders themselves need Redis for
their replies; reads and cancels queued meanwhile are not refused by the limiter). The Redis
client (``live_api.limiter_redis``) has short timeouts for the same reason: a slow limiter must
not hold every request.

``scope`` prefixes every key (the commands topic), so that exchanges sharing the table and the
Redis (test exchanges on their own topics, locally) count apart.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError

from bourse.adapters import aws
from bourse.adapters.rate_limit_counters import RedisCounters
from bourse.api.rate_limits import BAN_MEMORY_MS, SECOND_MS, IpUsage, Limits, OrderCounts
from bourse.settings import Settings

log = logging.getLogger("bourse.rate_limits")
_CHECK_FAILED = "ConditionalCheckFailedException"


class DynamoBans:
    """The record of bans: one item per IP (``<scope>|ip|<ip>``), ``banUntil`` (ms) and
    ``bans`` (how many so far), expiring ``BAN_MEMORY_MS`` after the ban ends."""

    def __init__(self, table: str, scope: str) -> None:
        self.table = table
        self.scope = scope

    def _client(self) -> Any:
        return aws.fast_client("dynamodb")

    def _key(self, ip: str) -> dict[str, Any]:
        return {"pk": {"S": f"{self.scope}|ip|{ip}"}}

    def ban(self, ip: str, until_ms: int, bans: int, now_ms: int) -> tuple[int, int]:
        """(until, bans) of the ban in force: this one, or another container's that started a
        moment earlier. Raises botocore's errors."""
        try:
            self._client().update_item(
                TableName=self.table,
                Key=self._key(ip),
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
            if exc.response.get("Error", {}).get("Code") != _CHECK_FAILED:
                raise
            item = (
                self._client()
                .get_item(TableName=self.table, Key=self._key(ip), ConsistentRead=True)
                .get("Item")
                or {}
            )
            return (
                int(item.get("banUntil", {}).get("N", until_ms)),
                int(item.get("bans", {}).get("N", bans)),
            )
        return until_ms, bans


class RateLimitStore:
    def __init__(self, counters: RedisCounters, bans: DynamoBans, limits: Limits) -> None:
        self.counters = counters
        self.bans = bans
        self.limits = limits

    # -- the every-request path (fails open)

    def count(
        self, ip: str | None, weight: int, account_id: int | None, now_ms: int
    ) -> tuple[IpUsage | None, OrderCounts | None] | None:
        """The IP's weight and, with ``account_id``, the account's orders, counted in one
        round trip; None when Redis is unreachable."""
        try:
            return self.counters.count(ip, weight, account_id, now_ms)
        except RedisError as exc:
            log.warning("rate limits: Redis unavailable, request let through: %s", exc)
            return None

    def add_weight(self, ip: str, weight: int, now_ms: int) -> IpUsage | None:
        counted = self.count(ip, weight, None, now_ms)
        return None if counted is None else counted[0]

    def add_order(self, account_id: int, now_ms: int) -> OrderCounts | None:
        """One order (the WebSocket API counts it apart from the weight); no weight added."""
        counted = self.count(None, 0, account_id, now_ms)
        return None if counted is None else counted[1]

    def ban(self, ip: str, until_ms: int, bans: int, now_ms: int) -> int:
        """Record a ban (the ``bans``-th) and mirror it where requests check it; the ban in
        force when another container banned the same IP a moment earlier. Fails open to
        ``until_ms`` (the 418 is still answered)."""
        try:
            until_ms, bans = self.bans.ban(ip, until_ms, bans, now_ms)
        except (BotoCoreError, ClientError) as exc:
            log.warning("rate limits: ban of %s not recorded: %s", ip, exc)
        try:
            self.counters.mirror_ban(ip, until_ms, bans, now_ms)
        except RedisError as exc:
            log.warning("rate limits: ban of %s not mirrored: %s", ip, exc)
        return until_ms

    # -- reads (GET /api/v3/rateLimit/order: errors propagate)

    def order_counts(self, account_id: int, now_ms: int) -> OrderCounts:
        return self.counters.order_counts(account_id, now_ms)


@cache
def rate_limit_store(s: Settings, client: Any) -> RateLimitStore:
    """``client``: a Redis client of the limiter's own (``live_api.limiter_redis``: short
    timeouts, where the live view's waits on replies need long ones)."""
    limits = Limits(
        weight_per_minute=s.rate_limit_weight_per_minute,
        orders_per_10s=s.rate_limit_orders_per_10s,
        orders_per_day=s.rate_limit_orders_per_day,
    )
    counters = RedisCounters(client, s.commands_topic)
    return RateLimitStore(counters, DynamoBans(s.rate_limits_table, s.commands_topic), limits)
