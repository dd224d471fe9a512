"""A fan-out too large for one invocation's budget, split over parallel pusher invocations
(functions/pusher; docs/streams.md, "Fan-out").

The broadcaster keeps the first ``shard_size`` connections for itself and hands each further
shard to the pusher function in a synchronous Invoke (``RequestResponse``), all at once from
a thread pool; it waits for every shard before it returns. Why synchronous, not asynchronous
Invokes or an SQS queue: a connection's frames must stay in order across batches (a depth
diff stream applied out of order is a broken book), and only waiting for the shards before
the next batch keeps them so; the answers also bring back the gone connections, which the
broadcaster deletes as for its own posts. A shard is its frames once (each distinct frame a
string) and each connection's frame indexes, so 1,000 connections of one message are some
30 KB, far under Invoke's 6 MB.

Locally the gateway serves Lambda's Invoke API for the template's functions (its invoker,
devstack/gateway/websocket.py), so the same path runs there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bourse.adapters.lambda_invoke import lambda_client as lambda_client
from bourse.adapters.ws_push import PostResult, Pusher


def shard_event(work: Sequence[tuple[str, Sequence[bytes]]]) -> dict[str, Any]:
    """The pusher's event for ``work``: distinct frames once, connections by frame index."""
    index: dict[bytes, int] = {}
    connections: list[list[Any]] = []
    for connection_id, frames in work:
        connections.append([connection_id, [index.setdefault(f, len(index)) for f in frames]])
    return {"frames": [f.decode() for f in index], "connections": connections}


def shard_work(event: Mapping[str, Any]) -> dict[str, list[bytes]]:
    """``shard_event``'s inverse: each connection's frames."""
    frames = [str(f).encode() for f in event["frames"]]
    return {str(cid): [frames[int(i)] for i in ids] for cid, ids in event["connections"]}


def result_answer(result: PostResult) -> dict[str, Any]:
    return {"sent": result.sent, "gone": result.gone, "failed": result.failed}


class ShardedPusher:
    """``Pusher.post_all``, with shards beyond the first handed to ``function``."""

    def __init__(self, pusher: Pusher, lambda_client: Any, function: str, shard_size: int) -> None:
        self.pusher = pusher
        self._lambda = lambda_client
        self.function = function
        self.shard_size = shard_size
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="ws-shard")

    def post_all(self, frames: Mapping[str, Sequence[bytes]]) -> PostResult:
        if not self.function or len(frames) <= self.shard_size:
            return self.pusher.post_all(frames)
        work = list(frames.items())
        size = self.shard_size
        shards = [work[i : i + size] for i in range(size, len(work), size)]
        futures = [self._pool.submit(self._invoke, shard) for shard in shards]
        result = self.pusher.post_all(dict(work[:size]))
        for future in futures:
            result.add(future.result())
        return result

    def _invoke(self, shard: Sequence[tuple[str, Sequence[bytes]]]) -> PostResult:
        frames = sum(len(items) for _, items in shard)
        try:
            answer = self._lambda.invoke(
                FunctionName=self.function,
                InvocationType="RequestResponse",
                Payload=json.dumps(shard_event(shard)).encode(),
            )
            body = json.loads(answer["Payload"].read() or b"null")
        except Exception:
            # Unreachable, throttled or timed out: the shard's frames are lost (live data; not
            # retried, it may have posted some of them), counted as failed.
            return PostResult(failed=frames)
        if answer.get("FunctionError") or not isinstance(body, dict):
            return PostResult(failed=frames)
        return PostResult(
            sent=int(body["sent"]), gone=[str(c) for c in body["gone"]], failed=int(body["failed"])
        )
