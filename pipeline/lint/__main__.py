"""`python -m pipeline.lint`: see `pipeline.lint.main`."""

import os
import sys

from pipeline.lint import main

# The lowest priority: beside the verify sessions (`make verify` runs them side by side) lint
# takes the CPU their booting stacks leave idle instead of slowing them; alone it runs as fast.
LINT_NICENESS = 19

if __name__ == "__main__":
    os.nice(LINT_NICENESS)
    sys.exit(main())
