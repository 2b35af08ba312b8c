"""``python -m bench``: the benchmark of :mod:`bench.harness` (what ``make bench`` runs)."""

import sys

from bench.harness import main

if __name__ == "__main__":
    sys.exit(main())
