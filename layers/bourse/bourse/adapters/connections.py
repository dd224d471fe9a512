"""WebSocket connections and what each one receives, in DynamoDB.

Contract (the fan-out reads it; the WebSocket handlers write it):

* A connection is put on ``$connect`` and deleted on ``$disconnect`` with all its
  subscriptions. Both tables carry ``expiresAt`` (epoch seconds, the DynamoDB TTL attribute):
  API Gateway ends every connection after 2 h, so a connection whose ``$disconnect`` never
  ran (a crash) disappears by itself. Reads skip expired items, since TTL deletion lags.
* ``combined`` is set at connect: ``/stream?streams=`` connections (and clients that ask
  ``combined=true``) get every market payload wrapped as ``{"stream": name, "data": payload}``,
  ``/ws/`` ("raw") connections get the payload alone. ``Connection.frame`` does the wrapping.
  Binance's ``SET_PROPERTY`` changes it later (``set_combined``).
* Market subscriptions are keyed by Binance's stream name exactly as the client spelled it
  (lower-case symbol: ``btcusdt@trade``, ``btcusdt@depth@100ms``, ``!miniTicker@arr``);
  ``subscribe`` refuses a name that is not one (``InvalidStream``, ``bourse.ws.streams``).
  ``connections_for_stream(name)`` is one query of the ``by-stream`` index.
* User data is keyed by account: a connection receives an account's events once it connected
  with that account's listen key (``/ws/<listenKey>``, ``/stream?streams=<listenKey>``) or
  subscribed through the WebSocket API (``userDataStream.subscribe``). Such a subscription is
  an item of the subscriptions table whose stream is ``account_stream(account_id)``;
  ``connections_for_account(account_id)`` returns them, each knowing how its events are
  wrapped (``Connection.user_frame``): ``{"subscriptionId": n, "event": e}`` for WebSocket API
  subscriptions, ``{"stream": listenKey, "data": e}`` on combined connections, ``e`` alone on
  raw ones.
* ``session.logon`` binds an API key to a connection (``set_session``); the WebSocket API then
  runs that key's requests without a signature.
* A connection that logged on with an API key, or subscribed to user data through the
  WebSocket API with one (``subscribe_account(api_key=...)``), also has an item whose stream is
  ``key_stream(api_key)``, so that ``connections_for_api_key`` finds it through the
  ``by-stream`` index when the key is revoked (``bourse.adapters.api_keys.close_key_sessions``).
  Such items are never listed as subscriptions.

* Every subscription is also recorded, once DynamoDB has it and before the client is
  answered, in Redis for two to four minutes (``RecentSubscriptions``:
  ``recent-subs:{<stream>}:<period>`` hashes, connection id -> its ``Connection``), and
  removed there on unsubscribe and disconnect. The ``by-stream`` index is eventually
  consistent and the broadcaster keeps what it read from it for up to two seconds
  (``bourse.consumers.broadcaster.SubscriberCache``); it adds these recent subscribers to
  every list it uses, so a connection receives every event the broadcaster handles after its
  subscription was acknowledged (docs/streams.md, "Fan-out").

Tables (template.yaml): ConnectionsTable (key ``connectionId``) and SubscriptionsTable (key
``connectionId`` + ``stream``, index ``by-stream`` on ``stream`` + ``connectionId``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from botocore.exceptions import ClientError

from bourse.adapters import aws, redis_conn
from bourse.settings import get_settings
from bourse.ws.streams import parse_stream

# API Gateway's hard limit on a WebSocket connection's life.
MAX_CONNECTION_SECONDS = 2 * 60 * 60
ACCOUNT_STREAM_PREFIX = "@account:"
KEY_STREAM_PREFIX = "@apikey:"
BY_STREAM_INDEX = "by-stream"


def account_stream(account_id: int) -> str:
    """The subscriptions table's key for an account's user data (never a market name: those
    cannot start with ``@``)."""
    return f"{ACCOUNT_STREAM_PREFIX}{account_id}"


def key_stream(api_key: str) -> str:
    """The subscriptions table's key marking a connection that used ``api_key``."""
    return f"{KEY_STREAM_PREFIX}{api_key}"


def _internal(stream: str) -> bool:
    return stream.startswith((ACCOUNT_STREAM_PREFIX, KEY_STREAM_PREFIX))


@dataclass(frozen=True)
class Connection:
    """One connection that receives a stream (or an account's user data), and how."""

    connection_id: str
    combined: bool
    listen_key: str | None = None  # user data through a listen key
    subscription_id: int | None = None  # user data through the WebSocket API
    # Every message in the positioned envelope (withSeq / resumeFrom: bourse.streams.positions)
    positions: bool = False

    def frame(self, stream: str, data: Any) -> Any:
        """A market payload as this connection receives it."""
        return {"stream": stream, "data": data} if self.combined else data

    def user_frame(self, event: Any) -> Any:
        """A user data event as this connection receives it."""
        if self.subscription_id is not None:
            return {"subscriptionId": self.subscription_id, "event": event}
        if self.combined:
            return {"stream": self.listen_key, "data": event}
        return event


@dataclass(frozen=True)
class Session:
    api_key: str
    account_id: int
    since_ms: int


@dataclass(frozen=True)
class ConnectionState:
    connection_id: str
    combined: bool
    expires_at: int
    connected_at_ms: int
    session: Session | None
    # The WebSocket API URL's ``returnRateLimits=false``: answers omit rateLimits by default.
    return_rate_limits: bool = True
    positions: bool = False  # withSeq / resumeFrom (bourse.streams.positions)


@dataclass(frozen=True)
class AccountSubscription:
    account_id: int
    listen_key: str | None
    subscription_id: int | None
    api_key: str | None = None  # the key of a userDataStream.subscribe.signature


def _positions(item: dict[str, Any]) -> bool:
    return bool(item.get("positions", {"BOOL": False})["BOOL"])


class UnknownConnection(LookupError):
    """The connection is gone (disconnected or expired)."""


# -- recent subscriptions (Redis)

# How long a subscription stays listed in Redis, at least: far longer than a list read from
# the ``by-stream`` index can lag behind it (the index's propagation, typically well under a
# second, then the broadcaster's cache, at most 2 x BOURSE_BROADCASTER_SUBSCRIBERS_TTL_MS).
RECENT_SECONDS = 120
# How far apart the clocks of the functions' hosts may be (NTP keeps them within milliseconds).
CLOCK_SKEW_SECONDS = 10


def recent_key(stream: str, period: int) -> str:
    """The hash of ``stream``'s subscriptions made in ``period`` (epoch seconds //
    RECENT_SECONDS); the stream is the hash tag, as every live-view key's symbol is."""
    return f"recent-subs:{{{stream}}}:{period}"


def _encode_recent(connection: Connection) -> str:
    fields: dict[str, Any] = {"c": connection.combined}
    if connection.listen_key is not None:
        fields["k"] = connection.listen_key
    if connection.subscription_id is not None:
        fields["s"] = connection.subscription_id
    if connection.positions:
        fields["p"] = True
    return json.dumps(fields, separators=(",", ":"))


# Memoised: the broadcaster reads the same subscriptions on every batch for minutes.
@lru_cache(maxsize=65_536)
def _decode_recent(connection_id: str, value: str | bytes) -> Connection:
    fields = json.loads(value)
    return Connection(
        connection_id, bool(fields["c"]), fields.get("k"), fields.get("s"), bool(fields.get("p"))
    )


class RecentSubscriptions:
    """The subscriptions of the last minutes, in Redis (the module docstring says why).

    Time is cut in periods of RECENT_SECONDS; a subscription is a field of its stream's hash
    for the period it was made in (``recent_key``: connection id -> how the connection wants
    its frames), and a reader looks at the current period and the one before. So each
    subscription is read for at least RECENT_SECONDS, and no longer than twice that: a hash
    expires (``EXPIREAT``) once no reader looks at it, nothing is ever pruned. A subscription
    made in the first CLOCK_SKEW_SECONDS of a period is filed in the previous one too, for a
    reader whose clock is behind. Writes are one pipeline (HSET and EXPIREAT per stream), and
    ``read`` gets every subscription of a batch's streams in one pipeline of two HGETALLs per
    stream. Stream names are the subscriptions table's (``account_stream`` for user data)."""

    def __init__(self, client: Any, clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._clock = clock

    def add(self, connection: Connection, streams: Iterable[str]) -> None:
        now = self._clock()
        period = int(now // RECENT_SECONDS)
        periods = [period]
        if now - period * RECENT_SECONDS < CLOCK_SKEW_SECONDS:
            periods.append(period - 1)
        value = _encode_recent(connection)
        pipe = self._redis.pipeline(transaction=False)
        for stream in streams:
            for p in periods:
                key = recent_key(stream, p)
                pipe.hset(key, connection.connection_id, value)
                # Read until the end of the next period, on any host's clock (and Redis's).
                pipe.expireat(key, (p + 3) * RECENT_SECONDS)
        pipe.execute()

    def remove(self, connection_id: str, streams: Iterable[str]) -> None:
        period = int(self._clock() // RECENT_SECONDS)
        pipe = self._redis.pipeline(transaction=False)
        for stream in streams:
            for p in range(period - 2, period + 2):
                pipe.hdel(recent_key(stream, p), connection_id)
        pipe.execute()

    def read(self, streams: Sequence[str]) -> list[list[Connection]]:
        """Each stream's recent subscribers (a connection once, its newest subscription)."""
        period = int(self._clock() // RECENT_SECONDS)
        pipe = self._redis.pipeline(transaction=False)
        for stream in streams:
            pipe.hgetall(recent_key(stream, period - 1))
            pipe.hgetall(recent_key(stream, period))
        replies = pipe.execute()
        out: list[list[Connection]] = []
        for i in range(len(streams)):
            found: dict[str, Connection] = {}
            for hash_ in replies[2 * i : 2 * i + 2]:
                for key, value in hash_.items():
                    cid = key.decode() if isinstance(key, bytes) else str(key)
                    found[cid] = _decode_recent(cid, value)
            out.append(list(found.values()))
        return out


class ConnectionStore:
    """``recent``: where subscriptions are also recorded for the broadcaster (``store()`` gives
    this deployment's Redis; without it, only DynamoDB is written)."""

    def __init__(
        self,
        connections_table: str,
        subscriptions_table: str,
        recent: RecentSubscriptions | None = None,
    ) -> None:
        self.connections_table = connections_table
        self.subscriptions_table = subscriptions_table
        self.recent = recent

    @property
    def _ddb(self) -> Any:
        return aws.client("dynamodb")

    # -- connections

    def put_connection(
        self,
        connection_id: str,
        *,
        account_id: int | None,
        combined: bool,
        expires_at: int,
        listen_key: str | None = None,
        return_rate_limits: bool = True,
        positions: bool = False,
    ) -> None:
        """A new connection; with ``account_id`` it also receives that account's user data
        (a listen key connection: ``listen_key`` names it on combined connections);
        ``positions``: every message in the positioned envelope."""
        item = {
            "connectionId": {"S": connection_id},
            "combined": {"BOOL": combined},
            "expiresAt": {"N": str(expires_at)},
            "connectedAt": {"N": str(time.time_ns() // 1_000_000)},
        }
        if not return_rate_limits:  # absent: the default, true (items written before it)
            item["returnRateLimits"] = {"BOOL": False}
        if positions:  # absent: false
            item["positions"] = {"BOOL": True}
        self._ddb.put_item(TableName=self.connections_table, Item=item)
        if account_id is not None:
            self.subscribe_account(connection_id, account_id, listen_key=listen_key)

    def get_connection(self, connection_id: str) -> ConnectionState | None:
        item = self._ddb.get_item(
            TableName=self.connections_table,
            Key={"connectionId": {"S": connection_id}},
            ConsistentRead=True,
        ).get("Item")
        if item is None or int(item["expiresAt"]["N"]) <= int(time.time()):
            return None
        session = None
        if "sessionApiKey" in item:
            session = Session(
                item["sessionApiKey"]["S"],
                int(item["sessionAccountId"]["N"]),
                int(item["sessionSince"]["N"]),
            )
        return ConnectionState(
            connection_id=connection_id,
            combined=item["combined"]["BOOL"],
            expires_at=int(item["expiresAt"]["N"]),
            connected_at_ms=int(item["connectedAt"]["N"]),
            session=session,
            return_rate_limits=item.get("returnRateLimits", {"BOOL": True})["BOOL"],
            positions=item.get("positions", {"BOOL": False})["BOOL"],
        )

    def _require(self, connection_id: str) -> ConnectionState:
        state = self.get_connection(connection_id)
        if state is None:
            raise UnknownConnection(connection_id)
        return state

    def delete_connection(self, connection_id: str) -> None:
        """The connection and every subscription it had (market and user data)."""
        keys = [
            {"connectionId": {"S": connection_id}, "stream": item["stream"]}
            for item in self._query_connection(connection_id, "stream")
        ]
        self._delete_subscriptions(keys)
        self._forget_recent(
            connection_id,
            [k["stream"]["S"] for k in keys if not k["stream"]["S"].startswith(KEY_STREAM_PREFIX)],
        )
        self._ddb.delete_item(
            TableName=self.connections_table, Key={"connectionId": {"S": connection_id}}
        )

    def set_session(self, connection_id: str, api_key: str, account_id: int) -> None:
        """``session.logon``: later requests on the connection run as this key (marked, so
        that revoking the key finds the connection)."""
        state = self._require(connection_id)
        self._mark_key(state, api_key)
        try:
            old = self._ddb.update_item(
                TableName=self.connections_table,
                Key={"connectionId": {"S": connection_id}},
                UpdateExpression="SET sessionApiKey = :k, sessionAccountId = :a, sessionSince = :t",
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeValues={
                    ":k": {"S": api_key},
                    ":a": {"N": str(account_id)},
                    ":t": {"N": str(time.time_ns() // 1_000_000)},
                },
                ReturnValues="UPDATED_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise UnknownConnection(connection_id) from None
            raise
        self._unmark_replaced(connection_id, old.get("Attributes", {}), api_key)

    def clear_session(self, connection_id: str) -> None:
        try:
            old = self._ddb.update_item(
                TableName=self.connections_table,
                Key={"connectionId": {"S": connection_id}},
                UpdateExpression="REMOVE sessionApiKey, sessionAccountId, sessionSince",
                # An update creates a missing item: never a bare one for a closed connection.
                ConditionExpression="attribute_exists(connectionId)",
                ReturnValues="UPDATED_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return
            raise
        self._unmark_replaced(connection_id, old.get("Attributes", {}), None)

    def _mark_key(self, state: ConnectionState, api_key: str) -> None:
        self._ddb.put_item(
            TableName=self.subscriptions_table,
            Item={
                "connectionId": {"S": state.connection_id},
                "stream": {"S": key_stream(api_key)},
                "combined": {"BOOL": state.combined},
                "expiresAt": {"N": str(state.expires_at)},
                "subscribedAt": {"N": str(time.time_ns())},
            },
        )

    def _unmark_replaced(
        self, connection_id: str, old: dict[str, Any], current: str | None
    ) -> None:
        """Drops the mark of the session's previous key, unless a user data subscription
        made with that key still needs it."""
        previous = old.get("sessionApiKey", {}).get("S")
        if previous is None or previous == current:
            return
        if any(s.api_key == previous for s in self.account_subscriptions(connection_id)):
            return
        self._delete_subscriptions(
            [{"connectionId": {"S": connection_id}, "stream": {"S": key_stream(previous)}}]
        )

    def connections_for_api_key(self, api_key: str) -> list[str]:
        """The connections logged on, or subscribed to user data, with ``api_key``."""
        return [item["connectionId"]["S"] for item in self._query_stream(key_stream(api_key))]

    # -- market streams

    def subscribe(self, connection_id: str, streams: Iterable[str]) -> None:
        """Adds market streams (already subscribed ones stay as they are). ``InvalidStream``
        for a name that is not a market stream, before anything is written;
        ``UnknownConnection`` when the connection is gone."""
        names = list(dict.fromkeys(streams))
        for name in names:
            parse_stream(name)
        state = self._require(connection_id)
        now_ns = time.time_ns()
        with self._writer() as batch:
            for offset, name in enumerate(names):
                item: dict[str, Any] = {
                    "connectionId": connection_id,
                    "stream": name,
                    "combined": state.combined,
                    "expiresAt": state.expires_at,
                    # LIST_SUBSCRIPTIONS answers in subscription order, as Binance does.
                    "subscribedAt": now_ns + offset,
                }
                if state.positions:
                    item["positions"] = True
                batch.put_item(Item=item)
        if self.recent is not None and names:
            connection = Connection(connection_id, state.combined, positions=state.positions)
            self.recent.add(connection, names)

    def unsubscribe(self, connection_id: str, streams: Iterable[str]) -> None:
        """Removes market streams; names not subscribed are ignored, as Binance does."""
        names = [name for name in dict.fromkeys(streams) if not _internal(name)]
        self._delete_subscriptions(
            [{"connectionId": {"S": connection_id}, "stream": {"S": name}} for name in names]
        )
        self._forget_recent(connection_id, names)

    def list_subscriptions(self, connection_id: str) -> list[str]:
        """The connection's market streams and listen keys, oldest first."""
        rows: list[tuple[int, str]] = []
        for item in self._query_connection(connection_id):
            stream = item["stream"]["S"]
            if stream.startswith(KEY_STREAM_PREFIX):
                continue
            if stream.startswith(ACCOUNT_STREAM_PREFIX):
                if "listenKey" not in item:
                    continue
                stream = item["listenKey"]["S"]
            rows.append((int(item.get("subscribedAt", {"N": "0"})["N"]), stream))
        return [stream for _, stream in sorted(rows)]

    def set_combined(self, connection_id: str, combined: bool) -> None:
        """Binance's ``SET_PROPERTY ["combined", ...]``: how every later payload of the
        connection is wrapped. The connection and each of its subscription items change (the
        broadcaster reads ``combined`` from the items), and the subscriptions are recorded
        again in Redis, so that the broadcaster's cached lists are overridden from the
        acknowledgement on. ``UnknownConnection`` when the connection is gone."""
        try:
            self._ddb.update_item(
                TableName=self.connections_table,
                Key={"connectionId": {"S": connection_id}},
                UpdateExpression="SET combined = :c",
                ConditionExpression="attribute_exists(connectionId)",
                ExpressionAttributeValues={":c": {"BOOL": combined}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise UnknownConnection(connection_id) from None
            raise
        recent: dict[Connection, list[str]] = {}
        for item in list(self._query_connection(connection_id)):
            stream = item["stream"]["S"]
            try:
                self._ddb.update_item(
                    TableName=self.subscriptions_table,
                    Key={"connectionId": {"S": connection_id}, "stream": {"S": stream}},
                    UpdateExpression="SET combined = :c",
                    # An update creates a missing item: never one for a stream just dropped.
                    ConditionExpression="attribute_exists(connectionId)",
                    ExpressionAttributeValues={":c": {"BOOL": combined}},
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    continue
                raise
            if stream.startswith(KEY_STREAM_PREFIX):
                continue  # a mark, never delivered to
            connection = Connection(
                connection_id,
                combined,
                item["listenKey"]["S"] if "listenKey" in item else None,
                int(item["subscriptionId"]["N"]) if "subscriptionId" in item else None,
                _positions(item),
            )
            recent.setdefault(connection, []).append(stream)
        if self.recent is not None:
            for connection, streams in recent.items():
                self.recent.add(connection, streams)

    def connections_for_stream(self, stream: str) -> list[Connection]:
        return [
            Connection(
                item["connectionId"]["S"], item["combined"]["BOOL"], positions=_positions(item)
            )
            for item in self._query_stream(stream)
        ]

    # -- user data

    def subscribe_account(
        self,
        connection_id: str,
        account_id: int,
        *,
        listen_key: str | None = None,
        with_subscription_id: bool = False,
        api_key: str | None = None,
        positions: bool | None = None,
    ) -> int | None:
        """The connection receives the account's user data (``positions``: in the positioned
        envelope, whatever the connection's own setting). ``with_subscription_id`` (the
        WebSocket API): events are wrapped with a subscription id, new per connection from 0,
        which is returned. Returns None without one; raises ``AlreadySubscribed`` when the
        connection already receives this account's events. ``api_key``: the key that
        authorised it (recorded and marked: revoking the key ends the connection)."""
        state = self._require(connection_id)
        key = {"connectionId": {"S": connection_id}, "stream": {"S": account_stream(account_id)}}
        # Checked before an id is taken, so a refused request leaves the numbering alone.
        if "Item" in self._ddb.get_item(
            TableName=self.subscriptions_table, Key=key, ConsistentRead=True
        ):
            raise AlreadySubscribed(account_id)
        subscription_id = (
            self._next_subscription_id(connection_id) if with_subscription_id else None
        )
        item: dict[str, Any] = {
            **key,
            "accountId": {"N": str(account_id)},
            "combined": {"BOOL": state.combined},
            "expiresAt": {"N": str(state.expires_at)},
            "subscribedAt": {"N": str(time.time_ns())},
        }
        if listen_key is not None:
            item["listenKey"] = {"S": listen_key}
        if subscription_id is not None:
            item["subscriptionId"] = {"N": str(subscription_id)}
        if api_key is not None:
            item["apiKey"] = {"S": api_key}
            self._mark_key(state, api_key)
        positioned = state.positions if positions is None else positions
        if positioned:
            item["positions"] = {"BOOL": True}
        try:
            self._ddb.put_item(
                TableName=self.subscriptions_table,
                Item=item,
                ConditionExpression="attribute_not_exists(connectionId)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise AlreadySubscribed(account_id) from None
            raise
        if self.recent is not None:
            connection = Connection(
                connection_id, state.combined, listen_key, subscription_id, positioned
            )
            self.recent.add(connection, [account_stream(account_id)])
        return subscription_id

    def account_subscriptions(self, connection_id: str) -> list[AccountSubscription]:
        return [
            AccountSubscription(
                account_id=int(item["accountId"]["N"]),
                listen_key=item["listenKey"]["S"] if "listenKey" in item else None,
                subscription_id=(
                    int(item["subscriptionId"]["N"]) if "subscriptionId" in item else None
                ),
                api_key=item["apiKey"]["S"] if "apiKey" in item else None,
            )
            for item in self._query_connection(connection_id)
            if item["stream"]["S"].startswith(ACCOUNT_STREAM_PREFIX)
        ]

    def unsubscribe_account(self, connection_id: str, account_id: int) -> None:
        self._delete_subscriptions(
            [{"connectionId": {"S": connection_id}, "stream": {"S": account_stream(account_id)}}]
        )
        self._forget_recent(connection_id, [account_stream(account_id)])

    def connections_for_account(self, account_id: int) -> list[Connection]:
        return [
            Connection(
                connection_id=item["connectionId"]["S"],
                combined=item["combined"]["BOOL"],
                listen_key=item["listenKey"]["S"] if "listenKey" in item else None,
                subscription_id=(
                    int(item["subscriptionId"]["N"]) if "subscriptionId" in item else None
                ),
                positions=_positions(item),
            )
            for item in self._query_stream(account_stream(account_id))
        ]

    def _forget_recent(self, connection_id: str, streams: list[str]) -> None:
        if self.recent is not None and streams:
            self.recent.remove(connection_id, streams)

    # -- DynamoDB

    def _next_subscription_id(self, connection_id: str) -> int:
        answer = self._ddb.update_item(
            TableName=self.connections_table,
            Key={"connectionId": {"S": connection_id}},
            UpdateExpression="ADD nextSubscriptionId :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["nextSubscriptionId"]["N"]) - 1

    def _pages(self, **query: Any) -> Iterator[dict[str, Any]]:
        paginator = self._ddb.get_paginator("query")
        for page in paginator.paginate(TableName=self.subscriptions_table, **query):
            yield from page.get("Items", [])

    def _query_connection(
        self, connection_id: str, projection: str | None = None
    ) -> Iterator[dict[str, Any]]:
        query: dict[str, Any] = {
            "KeyConditionExpression": "connectionId = :c",
            "ExpressionAttributeValues": {":c": {"S": connection_id}},
            "ConsistentRead": True,
        }
        if projection is not None:
            query["ProjectionExpression"] = "#p"
            query["ExpressionAttributeNames"] = {"#p": projection}
        return self._pages(**query)

    def _query_stream(self, stream: str) -> Iterator[dict[str, Any]]:
        return self._pages(
            IndexName=BY_STREAM_INDEX,
            KeyConditionExpression="stream = :s",
            FilterExpression="expiresAt > :now",
            ExpressionAttributeValues={
                ":s": {"S": stream},
                ":now": {"N": str(int(time.time()))},
            },
        )

    def _writer(self) -> Any:
        # The resource's batch writer: 25-item batches and retries of unprocessed items.
        return aws.resource("dynamodb").Table(self.subscriptions_table).batch_writer()

    def _delete_subscriptions(self, keys: list[dict[str, Any]]) -> None:
        if not keys:
            return
        with self._writer() as batch:
            for key in keys:
                batch.delete_item(
                    Key={"connectionId": key["connectionId"]["S"], "stream": key["stream"]["S"]}
                )


class AlreadySubscribed(Exception):
    def __init__(self, account_id: int) -> None:
        super().__init__(f"account {account_id} is already subscribed")
        self.account_id = account_id


def recent_subscriptions(redis_url: str) -> RecentSubscriptions:
    """This deployment's recent subscriptions (the live view's Redis, with its AUTH token)."""
    return RecentSubscriptions(
        redis_conn.connect(redis_url, socket_timeout=2, socket_connect_timeout=2)
    )


@cache
def _store(connections_table: str, subscriptions_table: str, redis_url: str) -> ConnectionStore:
    return ConnectionStore(connections_table, subscriptions_table, recent_subscriptions(redis_url))


def store() -> ConnectionStore:
    """The store of this deployment's tables and Redis (settings)."""
    settings = get_settings()
    return _store(settings.connections_table, settings.subscriptions_table, settings.redis_url)


# Module-level shortcuts onto ``store()``, for callers that want no object.


def put_connection(
    connection_id: str,
    *,
    account_id: int | None,
    combined: bool,
    expires_at: int,
    listen_key: str | None = None,
) -> None:
    store().put_connection(
        connection_id,
        account_id=account_id,
        combined=combined,
        expires_at=expires_at,
        listen_key=listen_key,
    )


def delete_connection(connection_id: str) -> None:
    store().delete_connection(connection_id)


def subscribe(connection_id: str, streams: Iterable[str]) -> None:
    store().subscribe(connection_id, streams)


def unsubscribe(connection_id: str, streams: Iterable[str]) -> None:
    store().unsubscribe(connection_id, streams)


def list_subscriptions(connection_id: str) -> list[str]:
    return store().list_subscriptions(connection_id)


def connections_for_stream(stream: str) -> list[Connection]:
    return store().connections_for_stream(stream)


def connections_for_account(account_id: int) -> list[Connection]:
    return store().connections_for_account(account_id)
