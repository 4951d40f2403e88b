"""The conv benchmark as committed in experiments/results/bench_ops_cpu.md: ``jaxconv bench``
with the environment as it is (no XLA flags or malloc tunables added), then with the settings
the ``jaxconv`` command uses.

Run: ``.venv/bin/python experiments/bench_ops.py [--repeats N] [--cases NAME ...] [--no-steps]``
"""

import sys

from jaxconv.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "--settings", "both", *sys.argv[1:]]))
