"""`python -m pipeline.lint`: see `pipeline.lint.main`."""

import sys

from pipeline.lint import main

if __name__ == "__main__":
    sys.exit(main())
