"""``python -m matching_service``: run the matching service until SIGTERM.

Exit codes: 0 stopped cleanly, 1 error (the supervisor restarts it: recovery is replay),
3 fenced by a newer instance, 4 the rebuilt engine does not continue the committed stream.
"""

from __future__ import annotations

import logging
import sys

from bourse.settings import get_settings
from matching_service import logs
from matching_service.service import EXIT_ERROR, MatchingService


def main() -> int:
    logs.configure()
    try:
        return MatchingService(get_settings()).run()
    except Exception:
        logging.getLogger("matching_service").exception("crashed")
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
