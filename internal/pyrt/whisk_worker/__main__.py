"""python -m whisk_worker ARGS: the same as whisk_worker.main.main(ARGS)."""

import sys

from whisk_worker.main import main

sys.exit(main(sys.argv[1:]))
