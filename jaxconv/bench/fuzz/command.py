"""The fuzz's command line, ``python -m jaxconv.bench.fuzz`` (``jaxconv bench --fuzz`` calls
`main`): run, report, and the child-process mode the runner starts."""

from __future__ import annotations

import argparse
import pathlib
import time
from collections.abc import Sequence

from jaxconv.bench.fuzz.cases import DTYPES, cases
from jaxconv.bench.fuzz.check import serve
from jaxconv.bench.fuzz.report import report
from jaxconv.bench.fuzz.runner import CASE_TIMEOUT, Progress, cores, run, settings

DESCRIPTION = "Fuzzing every conv formulation: random configurations, values and both gradients."


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number of children")
    return value


def _known_impls(parser: argparse.ArgumentParser, impls: Sequence[str]) -> None:
    from jaxconv.functional.formulations import CONV
    from jaxconv.functional.transpose import TRANSPOSE

    known = ["auto", *dict.fromkeys([*CONV, *TRANSPOSE])]
    unknown = [name for name in impls if name not in known]
    if unknown:
        parser.error(f"--impls {' '.join(unknown)}: not a formulation; expected some of "
                     f"{', '.join(known)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxconv.bench.fuzz", description=DESCRIPTION)
    parser.add_argument("n", nargs="?", type=int, default=200, help="cases (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtypes", nargs="*", default=list(DTYPES), choices=DTYPES)
    parser.add_argument("--case-timeout", type=float, default=CASE_TIMEOUT,
                        help=f"seconds one check may take (default {CASE_TIMEOUT:g})")
    parser.add_argument("--output", default="fuzz-failures.md",
                        help="where failures and their reproducers go")
    parser.add_argument("--jobs", type=_positive, default=cores(),
                        help="child processes checking at once (default: one per CPU core)")
    parser.add_argument("--wide", action="store_true",
                        help="cases with 6-16x the channels (dense convs, YNNPACK's sizes)")
    parser.add_argument("--progress", default=None, metavar="FILE",
                        help="record each finished check in FILE and, when it exists, skip the "
                             "checks it records: a run stopped anywhere resumes where it was; "
                             "FILE is removed once the report is written")
    parser.add_argument("--large", action="store_true",
                        help="cases on larger maps (8-24 positions past the window per side)")
    parser.add_argument("--pointwise", action="store_true",
                        help="1x1 cases only, with 6-255 channels, on maps of 13-41 "
                             "positions per side (1-D, 2-D; 3-D as --large's)")
    parser.add_argument("--impls", nargs="+", default=None, metavar="IMPL",
                        help="check only these formulations ('auto' included only if named); "
                             "the way to fuzz one that auto does not pick yet, such as onednn "
                             "(default: every formulation auto may pick, and auto)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.impls is not None:
        _known_impls(parser, args.impls)
    if args.pointwise and (args.large or args.wide):
        parser.error("--pointwise chooses its own channels and maps; expected it without "
                     "--wide and --large")
    if args.worker:
        serve()
        return 0
    start = time.monotonic()
    progress = None if args.progress is None else Progress(
        args.progress, settings(args.n, args.seed, args.wide, args.dtypes, args.impls, args.large,
                 args.pointwise))
    # Each failure is printed (flushed) as it is found: a run stopped early keeps them.
    failures, checks = run(args.n, seed=args.seed, dtypes=args.dtypes,
                           case_timeout=args.case_timeout, wide=args.wide, jobs=args.jobs,
                           log=lambda line: print(line, flush=True), progress=progress,
                           impls=args.impls, large=args.large, pointwise=args.pointwise)
    seconds = time.monotonic() - start if progress is None else progress.elapsed()
    text = report(failures, checks, args.n, args.seed, seconds,
                  list(cases(args.n, args.seed, args.wide, args.impls, args.large,
                             args.pointwise)), args.dtypes,
                  args.wide, jobs=args.jobs, impls=args.impls, large=args.large,
                  pointwise=args.pointwise)
    from jaxconv.tuning.files import atomic_write_text

    atomic_write_text(pathlib.Path(args.output), text)
    if progress is not None:          # the report holds everything now
        progress.path.unlink()
    print(text.split("\n\n")[1])
    print(f"report: {args.output}")
    return 1 if failures else 0
