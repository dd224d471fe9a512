import sys

from bench.chaos.drill import main

sys.exit(main())
