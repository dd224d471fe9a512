"""``python -m infra.deploy_check``: see runner.py."""

import sys

from infra.deploy_check.runner import main

sys.exit(main())
