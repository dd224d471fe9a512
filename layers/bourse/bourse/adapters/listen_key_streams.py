"""Ending the WebSocket streams of a listen key that ended (closed or expired), as Binance
does: each connection streaming it (``/ws/<listenKey>``, ``/stream?streams=<listenKey>``)
receives the ``listenKeyExpired`` event (``{"e": "listenKeyExpired", "E": ms, "listenKey":
...}``, wrapped as the connection wraps user data) and is then closed through the @connections
API (POST the event, then DELETE; a 410 Gone is fine), and its records are deleted, so nothing
more reaches it even if the DELETE failed.

The connections are the account's user-data subscriptions that name the listen key: the
``by-stream`` index (``ConnectionStore.connections_for_account``) plus the subscriptions of
the last minutes in Redis, which that eventually consistent index may not list yet. WebSocket
API subscriptions (``userDataStream.subscribe``) have no listen key and are left alone.

Who calls it: DELETE /api/v3/userDataStream and the WebSocket API's ``userDataStream.stop``
(through ``ListenKeys(on_close=end_streams)``, wired in ``bourse.adapters.live_api``), and the
broadcaster for a key that expired without keepalive (``bourse.consumers.broadcaster``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from bourse.adapters.connections import Connection

log = logging.getLogger("bourse.listen_keys")

EXPIRED_EVENT = "listenKeyExpired"


class Subscribers(Protocol):
    """``bourse.adapters.connections.ConnectionStore``, the calls made here."""

    def connections_for_account(self, account_id: int) -> list[Connection]: ...

    def delete_connection(self, connection_id: str) -> None: ...


class Recent(Protocol):
    """``bourse.adapters.connections.RecentSubscriptions``."""

    def read(self, streams: Sequence[str]) -> list[list[Connection]]: ...


def expired_event(listen_key: str, now_ms: int) -> dict[str, Any]:
    return {"e": EXPIRED_EVENT, "E": now_ms, "listenKey": listen_key}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ListenKeyStreams:
    def __init__(
        self,
        subscribers: Subscribers,
        management: Any,
        recent: Recent | None = None,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.subscribers = subscribers
        self.management = management
        self.recent = recent
        self.clock = clock

    def streaming(self, listen_key: str, account_id: int) -> list[Connection]:
        """The connections that receive the account's user data through ``listen_key``."""
        # Imported here: the modules that import this one for ``end_streams`` (every API
        # function, through live_api) need the connections tables only when a key closes.
        from bourse.adapters.connections import account_stream

        found = list(self.subscribers.connections_for_account(account_id))
        if self.recent is not None:
            (recent,) = self.recent.read([account_stream(account_id)])
            found += recent
        unique = {c.connection_id: c for c in found if c.listen_key == listen_key}
        return [unique[cid] for cid in sorted(unique)]

    def end(self, listen_key: str, account_id: int) -> int:
        """End every stream of ``listen_key``; how many connections were closed."""
        connections = self.streaming(listen_key, account_id)
        self.end_connections(listen_key, connections)
        return len(connections)

    def end_connections(self, listen_key: str, connections: Iterable[Connection]) -> None:
        """``listenKeyExpired`` to each, then close it and forget it."""
        event = expired_event(listen_key, self.clock())
        for connection in connections:
            cid = connection.connection_id
            frame = json.dumps(connection.user_frame(event), separators=(",", ":"))
            if self._call("post_to_connection", cid, Data=frame.encode()):
                self._call("delete_connection", cid)
            self.subscribers.delete_connection(cid)

    def _call(self, operation: str, connection_id: str, **extra: Any) -> bool:
        """One @connections call; False when the connection is gone or the call failed (the
        connection's records are deleted all the same)."""
        try:
            getattr(self.management, operation)(ConnectionId=connection_id, **extra)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "GoneException":
                log.warning("@connections call failed", extra={"connectionId": connection_id})
            return False
        except BotoCoreError:
            log.warning("@connections call failed", extra={"connectionId": connection_id})
            return False
        return True


class Validity(Protocol):
    """``bourse.adapters.listen_keys.ListenKeys.valid_until``."""

    def valid_until(self, listen_key: str) -> int | None: ...


# How long the broadcaster trusts a key's stored validity before reading it again: bounds how
# long a closed key whose connections the closing request missed keeps streaming.
RECHECK_MS = 30_000


class LiveListenKeys:
    """Which listen keys still stream, for the broadcaster: a key's ``validUntil`` is read from
    the table and kept until it passes or ``RECHECK_MS`` (a keepalive only moves it later, so
    a kept value never lets an expired key through; a close, missed by its own request, is
    seen within ``RECHECK_MS``)."""

    def __init__(self, keys: Validity, clock: Callable[[], int] = _now_ms) -> None:
        self.keys = keys
        self.clock = clock
        self._known: dict[str, tuple[int, int]] = {}  # key -> (read at, valid until)

    def ended(self, listen_keys: Iterable[str]) -> set[str]:
        """The keys, of ``listen_keys``, that expired or were closed."""
        now = self.clock()
        out: set[str] = set()
        for key in set(listen_keys):
            known = self._known.get(key)
            if known is None or known[1] <= now or now - known[0] >= RECHECK_MS:
                until = self.keys.valid_until(key)
                if until is None or until <= now:
                    self._known.pop(key, None)
                    out.add(key)
                    continue
                known = (now, until)
                self._known[key] = known
        if len(self._known) > 100_000:  # bounded: a long-lived container forgets old keys
            self._known.clear()
        return out


@cache
def _default() -> ListenKeyStreams:
    from bourse.adapters import connections
    from bourse.adapters.ws_push import management_client
    from bourse.settings import get_settings

    store = connections.store()
    return ListenKeyStreams(store, management_client(get_settings(), 1), store.recent)


def end_streams(listen_key: str, account_id: int) -> None:
    """This deployment's streams of a listen key just closed (``ListenKeys(on_close=...)``).
    A failure is logged, not raised: the key is closed already, and the broadcaster ends any
    stream it finds on a key that is no longer live."""
    try:
        _default().end(listen_key, account_id)
    except (ClientError, BotoCoreError, RedisError):
        log.exception("closing the streams of a closed listen key failed")
