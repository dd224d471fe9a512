"""JSON logs, one object per line, with the correlation fields the architecture asks for.

stdlib logging with a tiny formatter rather than Powertools: the service is not a Lambda and
this keeps start-up fast. Fields passed as ``extra=`` (``seq``, ``requestId``, ``offset``...)
become top-level keys.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "service": "matching",
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python logs every reconnect at INFO; keep the service's own lines readable.
    logging.getLogger("kafka").setLevel(logging.WARNING)
    # kafka-python's network thread warns whenever it waited >100 ms for the GIL, which a
    # thread matching a batch of thousands of commands holds by design; the warning says
    # nothing actionable here (consumer lag and batch latency are the metrics that do).
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)
    logging.getLogger("botocore").setLevel(logging.WARNING)
