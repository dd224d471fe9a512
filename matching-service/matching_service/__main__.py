"""``python -m matching_service``: run the matching service until SIGTERM.

Exit codes: 0 stopped cleanly, 1 error (the supervisor restarts it: recovery is replay),
3 fenced by a newer instance, 4 the rebuilt engine does not continue the committed stream.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import NoReturn

# Imports and connecting take seconds; a SIGTERM in that window (a deploy, `docker stop`) must
# still mean "stop cleanly", not death by the default handler. Record it until the service
# installs its own handlers, and hand it over then.
_early_stop = False


def _record_stop(signum: int, frame: FrameType | None) -> None:
    global _early_stop
    _early_stop = True


signal.signal(signal.SIGTERM, _record_stop)
signal.signal(signal.SIGINT, _record_stop)

import logging  # noqa: E402

# Importing the engine package chooses its form (bourse.engine_form), logged in main().
import bourse.engine  # noqa: E402, F401
from bourse import engine_form  # noqa: E402
from bourse.settings import get_settings  # noqa: E402
from matching_service import logs  # noqa: E402
from matching_service.service import EXIT_ERROR, MatchingService  # noqa: E402


def main() -> int:
    settings = get_settings()
    logs.configure(settings.matching_log_level)
    # Which engine runs is a question of speed only (both forms give the same events), and
    # the first thing to ask when a deployed service is slower than the benchmarks.
    logging.getLogger("matching_service").info(
        "engine form", extra={"engine": engine_form.form, "why": engine_form.reason}
    )
    try:
        service = MatchingService(settings)
        return service.run(stop_requested=lambda: _early_stop)
    except Exception:
        logging.getLogger("matching_service").exception("crashed")
        return EXIT_ERROR


def exit_now(code: int) -> NoReturn:
    """Leave at once with ``code``. A crash can leave the Kafka commit or the view write
    blocked on a dependency that is down (a transaction waits up to its max_block_ms, a Redis
    write on its retries), and a normal exit joins those worker threads first: the process
    would linger for minutes as "crashed" but alive, and its supervisor (devstack, ECS) would
    not restart it. Nothing is lost by not joining them: an uncommitted transaction is aborted
    by the next instance (fencing), a view write is one atomic script, and recovery rebuilds
    the view and the replies from the committed offset."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
