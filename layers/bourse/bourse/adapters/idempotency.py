"""newClientOrderId idempotency in DynamoDB (the IdempotencyTable: key ``id``, TTL attribute
``expiration``, Powertools' names).

The first request with a key claims it with a conditional put (``attribute_not_exists``) and
its command's request id; when the engine answers, the HTTP status and body are stored with
the key. A retry finds the claim: when the first attempt timed out (-1007), it waits on the
first command's reply list, which the matching service still fills; when the answer is an
order that is still open, it replays the answer. When the answer is a rejection or an order
that has closed since, the client id is free again (Binance) and the retry takes the key over
(``reclaim``, conditional on the request id it saw) and is a new order. So a retry never
produces a second command while the first could still be what the client is waiting for.

Each claim records when it was made (``claimedAt``, ms): a claim that was never answered (its
request gave up with -1007, or died) settles a bounded time later, when its command has either
executed or can no longer execute (``bourse.api.retries``); a retry then finds the first
attempt's order or takes the key over, instead of waiting for the item to expire.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from bourse.adapters import aws


class Claim:
    """What a retry finds: the first attempt's request id, when it claimed the key (ms; None
    for an item written before claims recorded it) and, once answered, its response."""

    def __init__(
        self,
        request_id: str,
        status: int | None,
        body: str | None,
        claimed_at_ms: int | None = None,
    ) -> None:
        self.request_id = request_id
        self.status = status
        self.body = body
        self.claimed_at_ms = claimed_at_ms


class DynamoIdempotency:
    """``scope`` prefixes every key: the commands topic, so that exchanges sharing a table (test
    exchanges on their own topics, locally) never answer each other's retries."""

    def __init__(self, table: str, ttl_s: int, scope: str) -> None:
        self.table = table
        self.ttl_s = ttl_s
        self.scope = scope

    def claim(self, key: str, request_id: str) -> Claim | None:
        """None when this request now owns ``key``; else the existing claim."""
        now = int(time.time())
        return self._put(
            key,
            request_id,
            # An expired item may linger until DynamoDB's TTL sweep removes it.
            "attribute_not_exists(id) OR expiration < :now",
            {":now": {"N": str(now)}},
        )

    def reclaim(self, key: str, old_request_id: str, request_id: str) -> Claim | None:
        """Take ``key`` over from the claim of ``old_request_id`` (answered, and its order no
        longer open: the client id is free again): None when this request now owns it; else
        the claim as it now is. Conditional on the claim seen, so of two retries that saw the
        same closed answer only one places an order; the other finds its claim."""
        return self._put(
            key,
            request_id,
            "attribute_not_exists(id) OR requestId = :old",
            {":old": {"S": old_request_id}},
        )

    def _put(
        self, key: str, request_id: str, condition: str, values: dict[str, Any]
    ) -> Claim | None:
        key = f"{self.scope}|{key}"
        client: Any = aws.client("dynamodb")
        now_ms = time.time_ns() // 1_000_000
        expires = now_ms // 1000 + self.ttl_s
        try:
            client.put_item(
                TableName=self.table,
                Item={
                    "id": {"S": key},
                    "requestId": {"S": request_id},
                    "expiration": {"N": str(expires)},
                    "claimedAt": {"N": str(now_ms)},
                },
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            item: dict[str, Any] = exc.response.get("Item") or client.get_item(  # type: ignore[assignment]
                TableName=self.table, Key={"id": {"S": key}}, ConsistentRead=True
            ).get("Item", {})
            status = item.get("status", {}).get("N")
            claimed_at = item.get("claimedAt", {}).get("N")
            return Claim(
                item.get("requestId", {}).get("S", ""),
                int(status) if status is not None else None,
                item.get("body", {}).get("S"),
                int(claimed_at) if claimed_at is not None else None,
            )
        return None

    def complete(self, key: str, status: int, body: str) -> None:
        aws.client("dynamodb").update_item(
            TableName=self.table,
            Key={"id": {"S": f"{self.scope}|{key}"}},
            UpdateExpression="SET #s = :s, body = :b",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"N": str(status)}, ":b": {"S": body}},
        )
