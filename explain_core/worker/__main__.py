"""`python -m explain_core.worker`: the same as `qa-worker`."""
import sys

from explain_core.worker.loop import main

sys.exit(main())
