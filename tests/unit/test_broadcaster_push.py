"""The fan-out's posting: ConnectionsApi (signed PostToConnection over kept-alive connections)
against a local HTTP server, and ShardedPusher's hand-off of shards to pusher invocations."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bourse.adapters.pusher_shards import ShardedPusher, shard_event, shard_work
from bourse.adapters.sigv4_signer import Credentials, Signer
from bourse.adapters.ws_push import ConnectionsApi, PostResult, Pusher


class _Server:
    """@connections as API Gateway answers it: 200, 410 for ids starting with "gone", one 429
    first for ids starting with "busy"; records every request and connection."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes, dict[str, str]]] = []
        self.connections = 0
        self._throttled: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                cid = self.path.rsplit("/", 1)[1]
                server.posts.append((cid, body, dict(self.headers.items())))
                status = 200
                if cid.startswith("gone"):
                    status = 410
                elif cid.startswith("busy") and cid not in server._throttled:
                    server._throttled.add(cid)
                    status = 429
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stage"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.httpd.shutdown()


def _api(server: _Server, concurrency: int = 4) -> ConnectionsApi:
    host = server.url.split("/")[2]
    signer = Signer(lambda: Credentials("AKID", "secret"), "us-east-1", "execute-api", host)
    return ConnectionsApi(server.url, signer, concurrency)


def test_posts_each_connection_its_frames_in_order_over_kept_alive_connections(
    server: _Server,
) -> None:
    frames = {f"c{i}": [b'{"n":1}', b'{"n":2}'] for i in range(40)}
    result = Pusher(_api(server), 4).post_all(frames)
    assert (result.sent, result.gone, result.failed) == (80, [], 0)
    for cid in frames:
        assert [body for c, body, _ in server.posts if c == cid] == [b'{"n":1}', b'{"n":2}']
    assert server.connections <= 4  # reused, not one per request
    assert all(h["Authorization"].startswith("AWS4-HMAC-SHA256 ") for *_, h in server.posts)


def test_gone_stops_a_connection_and_throttling_is_retried(server: _Server) -> None:
    frames = {"gone1": [b"{}", b"{}"], "busy1": [b"{}"], "ok": [b"{}"]}
    result = Pusher(_api(server), 2).post_all(frames)
    assert result.gone == ["gone1"]
    assert (result.sent, result.failed) == (2, 0)
    assert [c for c, *_ in server.posts].count("gone1") == 1
    assert [c for c, *_ in server.posts].count("busy1") == 2


def test_an_unreachable_endpoint_fails_the_frames() -> None:
    signer = Signer(lambda: Credentials("AKID", "secret"), "us-east-1", "execute-api", "x")
    api = ConnectionsApi("http://127.0.0.1:9", signer, 2)  # nothing listens on port 9
    result = Pusher(api, 2).post_all({"a": [b"{}", b"{}"], "b": [b"{}"]})
    assert (result.sent, result.failed, result.gone) == (0, 3, [])


def test_a_shard_event_carries_each_frame_once() -> None:
    shared, own = b'{"e":"trade"}', b'{"e":"other"}'
    work = [("a", [shared]), ("b", [shared, own]), ("c", [shared])]
    event = shard_event(work)
    assert event["frames"] == [shared.decode(), own.decode()]
    assert shard_work(json.loads(json.dumps(event))) == dict(work)


class _FakeLambda:
    def __init__(self, fail: bool = False) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail = fail
        self._lock = threading.Lock()

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict[str, Any]:
        assert InvocationType == "RequestResponse"
        event = json.loads(Payload)
        with self._lock:
            self.events.append(event)
        if self.fail:
            return {"FunctionError": "Unhandled", "Payload": io.BytesIO(b'{"errorType":"X"}')}
        work = shard_work(event)
        gone = [c for c in work if c.startswith("gone")]
        sent = sum(len(f) for c, f in work.items() if c not in gone)
        answer = {"sent": sent, "gone": gone, "failed": 0}
        return {"Payload": io.BytesIO(json.dumps(answer).encode())}


class _LocalPusher:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def post_all(self, frames: Any) -> PostResult:
        self.calls.append(list(frames))
        return PostResult(sent=sum(len(f) for f in frames.values()))


def test_shards_beyond_the_first_go_to_pusher_invocations() -> None:
    local, remote = _LocalPusher(), _FakeLambda()
    sharded = ShardedPusher(local, remote, "pusher", 3)  # type: ignore[arg-type]
    frames = {f"c{i}": [b"{}"] for i in range(8)} | {"gone9": [b"{}"]}
    result = sharded.post_all(frames)
    assert local.calls == [["c0", "c1", "c2"]]
    shards = sorted([c for c, _ in e["connections"]] for e in remote.events)
    assert shards == [["c3", "c4", "c5"], ["c6", "c7", "gone9"]]
    assert (result.sent, result.gone, result.failed) == (8, ["gone9"], 0)


def test_a_failed_shard_counts_its_frames_failed_and_small_fan_outs_stay_local() -> None:
    local, remote = _LocalPusher(), _FakeLambda(fail=True)
    sharded = ShardedPusher(local, remote, "pusher", 2)  # type: ignore[arg-type]
    result = sharded.post_all({"a": [b"{}"], "b": [b"{}"], "c": [b"{}", b"{}"]})
    assert (result.sent, result.failed) == (2, 2)
    local2, remote2 = _LocalPusher(), _FakeLambda()
    ShardedPusher(local2, remote2, "pusher", 2).post_all({"a": [b"{}"]})  # type: ignore[arg-type]
    assert remote2.events == [] and local2.calls == [["a"]]
