"""``python -m jaxconv.bench``: the benchmark in this process, with its environment as it is
(``jaxconv bench`` runs this with the settings it is asked for)."""

import argparse
import sys

from jaxconv import bench

parser = argparse.ArgumentParser(prog="python -m jaxconv.bench", description=__doc__)
parser.add_argument("--repeats", type=int, default=10)
parser.add_argument("--cases", nargs="*", default=[])
parser.add_argument("--nets", nargs="*", default=[])
parser.add_argument("--no-ops", action="store_true")
parser.add_argument("--no-steps", action="store_true")
parser.add_argument("--fit", action="store_true")
parser.add_argument("--synchronous-dispatch", action="store_true")
args = parser.parse_args()
if args.synchronous_dispatch:
    from jaxconv import environment

    environment.synchronous_dispatch()
try:
    for line in bench.report(repeats=args.repeats, cases=args.cases, nets=args.nets,
                             ops=not args.no_ops, steps=not args.no_steps, fit=args.fit):
        print(line, flush=True)
except ValueError as error:
    print(f"jaxconv bench: error: {error}", file=sys.stderr)
    sys.exit(2)
