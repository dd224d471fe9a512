"""What `make run` prints while the exchange runs: one short line per request and the warnings
and errors of every process; everything else only in ``.devstack/logs/<process>.log``.

Every process logs a great deal (each Lambda invocation, each metrics blob, the Kafka
client's chatter), and all of it in one stream hides the banner within a second and a warning
for good. So the console takes, from each line a process prints:

- a gateway request line: ``POST /api/v3/order 200 4 ms`` (the query string, which holds
  signatures and timestamps, stays in gateway.log), unless the demo market sent it (its own
  quoting, several requests a second, is not the developer's traffic);
- a line logged at WARNING or above, in any of the formats the processes use (JSON with a
  ``level``, or ``<time> <logger> <LEVEL> <message>``), and the last line of a traceback;
- nothing else: EMF metrics blobs, INFO and DEBUG lines, library chatter.

Colour (yellow warnings, red errors, status by class) only when the output is a terminal.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from typing import TextIO

from devstack.local_metrics import ACCESS_LINE, emf_blob

# The user agent devstack/demo_market.py sends, so its requests can be told apart.
DEMO_MARKET_AGENT = "bourse-demo-market"

_TEXT_LEVEL = re.compile(
    r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d+ (?P<logger>\S+) "
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) (?P<message>.*)$"
)
_RANK = {"DEBUG": 10, "INFO": 20, "WARN": 30, "WARNING": 30, "ERROR": 40, "CRITICAL": 50,
         "FATAL": 50}  # fmt: skip
_YELLOW, _RED, _GREEN, _DIM, _RESET = "\033[33m", "\033[31m", "\033[32m", "\033[2m", "\033[0m"


def _level(line: str) -> tuple[int, str]:
    """(severity, text to show) of a log line; severity 0 when it has none."""
    text = line.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            return 0, text
        if isinstance(doc, dict):
            level = str(doc.get("level", "")).upper()
            message = doc.get("message", doc.get("msg", text))
            logger = doc.get("logger") or doc.get("location") or ""
            extra = f" ({doc['exception']})" if "exception" in doc else ""
            shown = f"{logger}: {message}{extra}" if logger else f"{message}{extra}"
            return _RANK.get(level, 0), shown
        return 0, text
    match = _TEXT_LEVEL.match(text)
    if match is not None:
        return _RANK[match["level"]], f"{match['logger']}: {match['message']}"
    return 0, text


class Console:
    def __init__(self, out: TextIO = sys.stdout, colour: bool | None = None) -> None:
        self.out = out
        self.colour = out.isatty() if colour is None else colour
        self._lock = threading.Lock()
        self._in_traceback: set[str] = set()

    def _paint(self, text: str, colour: str) -> str:
        return f"{colour}{text}{_RESET}" if self.colour else text

    def _write(self, text: str) -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()

    def say(self, text: str) -> None:
        self._write(text)

    def warn(self, name: str, text: str) -> None:
        self._write(self._paint(f"{name:>11} | {text}", _YELLOW))

    def error(self, name: str, text: str) -> None:
        self._write(self._paint(f"{name:>11} | {text}", _RED))

    def request(self, method: str, path: str, status: int, ms: float | None) -> None:
        colour = _RED if status >= 500 else _YELLOW if status >= 400 else _GREEN
        took = f" {ms:.0f} ms" if ms is not None else ""
        stamp = self._paint(time.strftime("%H:%M:%S"), _DIM)
        self._write(f"{stamp} {method} {path.split('?', 1)[0]} "
                    f"{self._paint(str(status), colour)}{took}")  # fmt: skip

    def line(self, name: str, raw: str) -> None:
        """One line a process printed: shown, shortened, or left to its log file."""
        text = raw.rstrip("\n")
        if not text.strip() or emf_blob(text) is not None:
            return
        if name in self._in_traceback:
            if text.startswith((" ", "\t")):
                return
            # The first unindented line after the frames is the exception itself.
            self._in_traceback.discard(name)
            self.error(name, text.strip())
            return
        if text.startswith("Traceback (most recent call last)"):
            self._in_traceback.add(name)
            return
        if name == "gateway":
            match = ACCESS_LINE.search(text)
            if match is not None and "devstack.gateway " in text:
                if not (match["agent"] or "").startswith(DEMO_MARKET_AGENT):
                    ms = float(match["ms"]) if match["ms"] else None
                    self.request(match["method"], match["path"], int(match["status"]), ms)
                return
        severity, shown = _level(text)
        if severity >= _RANK["ERROR"]:
            self.error(name, shown)
        elif severity >= _RANK["WARNING"]:
            self.warn(name, shown)
