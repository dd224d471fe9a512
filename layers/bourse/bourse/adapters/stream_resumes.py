"""Resuming connections on AWS (docs/streams.md, "Resumable streams"), the ``$connect``
handler's side: check the log, mark the connection, start its replay as an asynchronous
invocation of the stream resume function (``bourse.adapters.stream_replay`` is that
function's side)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bourse.adapters.lambda_invoke import lambda_client
from bourse.adapters.stream_log import StreamLog, from_settings
from bourse.settings import Settings
from bourse.streams.positions import Position, entry_id


class LambdaResumes:
    def __init__(self, log: StreamLog, client: Any, function: str) -> None:
        self._log = log
        self._client = client
        self._function = function

    def check(self, logs: Sequence[str], cursor: Position) -> None:
        self._log.check(logs, cursor)

    def mark_replaying(self, connection_id: str, cursor: Position) -> None:
        self._log.mark_replaying(connection_id, cursor)

    def forget(self, connection_id: str) -> None:
        self._log.forget(connection_id)

    def start(
        self,
        connection_id: str,
        cursor: Position,
        logs: Sequence[tuple[str, str]],
        *,
        subscription_id: int | None = None,
        first: bytes = b"",
    ) -> None:
        payload: dict[str, Any] = {
            "connectionId": connection_id, "cursor": entry_id(cursor), "logs": logs
        }  # fmt: skip
        if subscription_id is not None:
            payload["subscriptionId"] = subscription_id
        if first:
            payload["first"] = first.decode()
        self._client.invoke(
            FunctionName=self._function,
            InvocationType="Event",
            Payload=json.dumps(payload).encode(),
        )


def resumes(settings: Settings) -> LambdaResumes | None:
    """This deployment's, or None where no resume function is configured."""
    if not settings.stream_resume_function:
        return None
    return LambdaResumes(
        from_settings(settings), lambda_client(settings, 1), settings.stream_resume_function
    )
