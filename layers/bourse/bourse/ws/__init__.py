"""The WebSocket transport (API Gateway v2 WebSocket API): market streams, user data streams
and the WebSocket API, which runs the REST handlers of ``bourse.api.handlers`` over another
transport. See docs/websocket.md."""
