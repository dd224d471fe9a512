"""Frames to WebSocket clients through API Gateway's @connections API (boto3
``apigatewaymanagementapi``; locally the gateway serves the same endpoint).

``post_all`` sends each connection its frames in order, connections in parallel on a thread
pool: one PostToConnection is one HTTPS round trip, so a fan-out to thousands of connections
is bound by round trips, not CPU, and boto3 clients are thread-safe. A connection that answers
410 GoneException is reported gone and gets nothing more from this call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bourse.settings import Settings


@dataclass
class PostResult:
    sent: int = 0
    gone: list[str] = field(default_factory=list)
    failed: int = 0  # frames lost to other errors (throttling after retries, timeouts)


def management_client(settings: Settings, threads: int) -> Any:
    options: dict[str, Any] = {
        "region_name": settings.region,
        "endpoint_url": settings.websocket_management_url,
        # One pooled HTTP connection per thread, or threads queue for a connection.
        "config": Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=2,
            read_timeout=5,
            max_pool_connections=threads,
        ),
    }
    if settings.aws_credentials is not None:
        options["aws_access_key_id"], options["aws_secret_access_key"] = settings.aws_credentials
    return boto3.client("apigatewaymanagementapi", **options)


class Pusher:
    def __init__(self, client: Any, threads: int) -> None:
        self._client = client
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="ws-push")

    def _send(self, connection_id: str, frames: Sequence[bytes]) -> tuple[int, bool, int]:
        sent = 0
        for i, data in enumerate(frames):
            try:
                self._client.post_to_connection(ConnectionId=connection_id, Data=data)
                sent += 1
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "GoneException":
                    return sent, True, 0
                return sent, False, len(frames) - i
            except BotoCoreError:
                return sent, False, len(frames) - i
        return sent, False, 0

    def post_all(self, frames: Mapping[str, Sequence[bytes]]) -> PostResult:
        result = PostResult()
        futures = {cid: self._pool.submit(self._send, cid, data) for cid, data in frames.items()}
        for cid, future in futures.items():
            sent, gone, failed = future.result()
            result.sent += sent
            result.failed += failed
            if gone:
                result.gone.append(cid)
        return result
