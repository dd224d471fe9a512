"""Frames to WebSocket clients through API Gateway's @connections API (locally the gateway
serves the same endpoint).

A fan-out is one PostToConnection per connection and frame, so what one costs decides how many
connections an invocation serves. ``ConnectionsApi`` posts over kept-alive HTTP connections
with ``Signer``'s SigV4 (the signing key derived once a day), at a fraction of boto3's
per-call CPU (docs/benchmarks.md). boto3's ``apigatewaymanagementapi`` client
(``management_client``) stays for the rare calls (closing a connection, reading one).

``Pusher.post_all`` sends each connection its frames in order, connections in parallel (each
post is one round trip). A connection that answers 410 GoneException is reported gone and
gets nothing more from this call.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bourse.adapters.sigv4_signer import Credentials, Signer
from bourse.settings import Settings

GONE = 410
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote(id, safe='') leaves as it is


@dataclass
class PostResult:
    sent: int = 0
    gone: list[str] = field(default_factory=list)
    failed: int = 0  # frames lost to other errors (throttling after retries, timeouts)

    def add(self, other: PostResult) -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.gone.extend(other.gone)

    def count(self, connection_id: str, status: int, unsent: int) -> bool:
        """One post's outcome; False when the connection's other frames are not to be sent:
        it is gone, or this post failed (its ``unsent`` frames, this one included, count as
        failed)."""
        if status == GONE:
            self.gone.append(connection_id)
            return False
        if not 200 <= status < 300:
            self.failed += unsent
            return False
        self.sent += 1
        return True


def management_client(settings: Settings, threads: int, attempts: int = 3) -> Any:
    """boto3's @connections client. ``attempts=1`` where a post sent twice would be a
    message received twice (a resuming connection's replay)."""
    options: dict[str, Any] = {
        "region_name": settings.region,
        "endpoint_url": settings.websocket_management_url,
        # One pooled HTTP connection per thread, or threads queue for a connection.
        "config": Config(
            retries={"mode": "standard", "max_attempts": attempts},
            connect_timeout=2,
            read_timeout=5,
            max_pool_connections=threads,
        ),
    }
    if settings.aws_credentials is not None:
        options["aws_access_key_id"], options["aws_secret_access_key"] = settings.aws_credentials
    return boto3.client("apigatewaymanagementapi", **options)


class ConnectionsApi:
    """PostToConnection over up to ``concurrency`` kept-alive HTTP/1.1 connections, all on one
    asyncio loop (a thread of its own, living as long as the container, so connections are
    reused across invocations), signed by ``signer``.

    Why HTTP by hand rather than urllib3 or boto3: a fan-out is one small request per
    connection and frame, and the libraries' per-request Python (urllib3's header objects,
    retry and timeout objects, http.client's email-parser response headers; boto3's
    validation, serialisation and parsing on top) cost 0.2-0.4 ms of CPU each here, so 1,000
    posts took half a second of CPU. Here a post is one write of the request and one read of
    a ``Content-Length`` response (API Gateway's @connections answers are all that shape),
    with asyncio streams (TLS on AWS through ``ssl``). Throttling (429) and transient errors
    (5xx) are retried twice, as boto3's standard mode would; a request whose response was lost
    is not (the frame may have been delivered), except on a kept-alive connection the server
    had closed before it (nothing was read: urllib3 does the same).
    """

    def __init__(
        self, endpoint_url: str, signer: Signer, concurrency: int, timeout_s: float = 5.0
    ) -> None:
        url = urlsplit(endpoint_url)
        self._tls = ssl.create_default_context() if url.scheme == "https" else None
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or (443 if self._tls else 80)
        self._prefix = url.path.rstrip("/") + "/@connections/"
        self._signer = signer
        self.concurrency = concurrency
        self._timeout_s = timeout_s
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="ws-push", daemon=True).start()

    def post_many(
        self, work: Sequence[tuple[str, Sequence[bytes]]], hashes: Mapping[bytes, str]
    ) -> PostResult:
        """Each connection's frames in order, connections ``concurrency`` at a time."""
        future = asyncio.run_coroutine_threadsafe(self._post_many(work, hashes), self._loop)
        return future.result()

    async def _post_many(
        self, work: Sequence[tuple[str, Sequence[bytes]]], hashes: Mapping[bytes, str]
    ) -> PostResult:
        result = PostResult()
        queue = iter(work)  # shared by the workers: one loop, so no lock
        loop = asyncio.get_running_loop()
        # When each worker's request in flight started (None: none). A watchdog cancels one
        # that takes longer than the timeout: an asyncio.timeout per request costs a timer
        # scheduled and cancelled per post, this costs a store.
        started: list[float | None] = []

        async def worker(slot: int) -> None:
            for connection_id, frames in queue:
                for i, data in enumerate(frames):
                    started[slot] = loop.time()
                    try:
                        status = await self._post(connection_id, data, hashes[data])
                    except (OSError, asyncio.IncompleteReadError, ValueError):
                        status = 0
                    except asyncio.CancelledError:  # the watchdog's: this request timed out
                        status = 0
                    started[slot] = None
                    if not result.count(connection_id, status, len(frames) - i):
                        break

        count = min(self.concurrency, len(work))
        started.extend([None] * count)
        tasks = [asyncio.ensure_future(worker(slot)) for slot in range(count)]
        while not all(task.done() for task in tasks):
            await asyncio.wait(tasks, timeout=self._timeout_s / 4)
            now = loop.time()
            for slot, task in enumerate(tasks):
                began = started[slot]
                if began is not None and now - began > self._timeout_s:
                    started[slot] = None
                    task.cancel()
        return result

    async def _post(self, connection_id: str, data: bytes, body_hash: str) -> int:
        path = self._prefix + (
            connection_id if _PLAIN_ID.fullmatch(connection_id) else quote(connection_id, safe="")
        )
        status = 0
        for attempt in range(3):
            headers = self._signer.headers("POST", path, data, body_hash)
            head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            request = (
                f"POST {path} HTTP/1.1\r\n{head}Content-Length: {len(data)}\r\n\r\n".encode() + data
            )
            status = await self._exchange(request)
            if status not in (429, 500, 502, 503, 504):
                return status
            await asyncio.sleep(0.05 * 2**attempt)
        return status

    async def _exchange(self, request: bytes) -> int:
        """One request and its response's status, on a pooled connection when one is idle."""
        reused = bool(self._idle)
        if reused:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._tls)
        try:
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if reused and not exc.partial:  # closed while idle: a fresh connection
                    writer.close()
                    return await self._exchange(request)
                raise
            status, length, close = _response_head(head)
            if length:
                await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if close:
            writer.close()
        else:
            self._idle.append((reader, writer))
        return status


def _response_head(head: bytes) -> tuple[int, int, bool]:
    """Status, Content-Length and whether the server closes, from a response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, close = 0, lines[0].startswith("HTTP/1.0")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection":
            close = value.strip().lower() == "close"
        elif name == "transfer-encoding":
            raise ValueError("chunked @connections response")  # API Gateway sends lengths
    return status, length, close


def connections_api(settings: Settings, pool_size: int) -> ConnectionsApi:
    """This deployment's @connections endpoint, signed with the function's credentials."""
    if settings.aws_credentials is not None:
        fixed = Credentials(*settings.aws_credentials)

        def credentials() -> Credentials:
            return fixed

    else:
        session_credentials = boto3.Session().get_credentials()
        assert session_credentials is not None, "no AWS credentials"

        def credentials() -> Credentials:
            frozen = session_credentials.get_frozen_credentials()
            return Credentials(frozen.access_key or "", frozen.secret_key or "", frozen.token)

    host = urlsplit(settings.websocket_management_url).netloc
    signer = Signer(credentials, settings.region, "execute-api", host)
    return ConnectionsApi(settings.websocket_management_url, signer, pool_size)


class Pusher:
    """``client``: a ``ConnectionsApi``, or a boto3 management client (tests' fakes), whose
    calls are made on ``threads`` threads."""

    def __init__(self, client: Any, threads: int) -> None:
        self._api = client if isinstance(client, ConnectionsApi) else None
        self._client = client
        self.threads = threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ws-push")

    def _post(self, connection_id: str, data: bytes) -> int:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "GoneException":
                return GONE
            return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 500)
        except BotoCoreError:
            return 0
        return 200

    def _send(self, work: Sequence[tuple[str, Sequence[bytes]]]) -> PostResult:
        result = PostResult()
        for connection_id, frames in work:
            for i, data in enumerate(frames):
                if not result.count(
                    connection_id, self._post(connection_id, data), len(frames) - i
                ):
                    break
        return result

    def post_all(self, frames: Mapping[str, Sequence[bytes]]) -> PostResult:
        work = list(frames.items())
        if self._api is not None:
            # A frame sent to many connections is one bytes object (frames are built once
            # per message and wrapping): hashed once here.
            hashes: dict[bytes, str] = {}
            for _, items in work:
                for data in items:
                    if data not in hashes:
                        hashes[data] = hashlib.sha256(data).hexdigest()
            return self._api.post_many(work, hashes)
        shares = [work[i :: self.threads] for i in range(min(self.threads, len(work)))]
        result = PostResult()
        for part in self._pool.map(self._send, shares):
            result.add(part)
        return result
