"""The conv benchmark as committed in experiments/results/bench_ops_cpu.md: ``jaxconv bench``
in the default environment (no XLA flags added), as a library user gets it.

Run: ``.venv/bin/python experiments/bench_ops.py [--repeats N] [--cases NAME ...] [--no-steps]``
"""

import sys

from jaxconv.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--xla-flags", "none", *sys.argv[1:]]))
