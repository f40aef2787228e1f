"""`python -m tests.bench [--quick] [--out DIR]` (what `make bench` runs)."""

import sys

from tests.bench.runner import main

if __name__ == "__main__":
    sys.exit(main())
