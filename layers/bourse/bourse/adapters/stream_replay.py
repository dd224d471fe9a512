"""The stream resume function's side of resuming connections (docs/streams.md, "Resumable
streams"): the replay (``bourse.ws.resume``) over the stream log, posting through the
@connections API."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from bourse.adapters.stream_log import from_settings
from bourse.adapters.ws_push import management_client
from bourse.settings import Settings
from bourse.streams.positions import from_entry_id
from bourse.ws.resume import GONE, Outcome, Replay


class _Connections:
    """Posts and closes through boto3's @connections client, one attempt per post."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def post(self, connection_id: str, frame: bytes) -> int:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=frame)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "GoneException":
                return GONE
            raise
        return 200

    def close(self, connection_id: str) -> None:
        try:
            self._client.delete_connection(ConnectionId=connection_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "GoneException":
                raise


def replay_from_event(settings: Settings, event: dict[str, Any]) -> Outcome:
    """The stream resume function's work: ``{"connectionId", "cursor", "logs"}``."""
    connections = _Connections(management_client(settings, 1, attempts=1))
    replay = Replay(from_settings(settings), connections.post, connections.close)
    logs = [(str(log), str(name)) for log, name in event["logs"]]
    subscription = event.get("subscriptionId")
    return replay.run(
        str(event["connectionId"]),
        from_entry_id(str(event["cursor"])),
        logs,
        subscription_id=None if subscription is None else int(subscription),
        first=str(event.get("first") or "").encode(),
    )
