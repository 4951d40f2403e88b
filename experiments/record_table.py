"""The record search on the validation split: each design at each length, and which reach the
target.

    python experiments/record_table.py [RESULTS_DIR] [--target PERCENT] [--prefix NAME]
                                       [--across-lengths]

Reads ``<RESULTS_DIR>/<NAME>-e<N>/`` and ``<RESULTS_DIR>/<NAME>-e<N>-<TRIAL>/`` (default
``experiments/results/fashion_mnist/record_search`` and ``record-search``, written by ``jaxconv
run configs/fashion_mnist/record_search.yaml`` at each length, a trial's folder with one more
recipe change): every finished ``result.json`` and its epoch records. Every seed of every
design, length and trial validates on the same split and trains on the same images in the same
order, so within a length the rows compare seed by seed. One row per length and design (``design
+ TRIAL`` for a trial's): the last epoch's validation accuracy (mean ± std over seeds, and each
seed's), the paired difference from the length's leading row (the highest mean among the rows
with the most seeds: mean ± its standard error, or the one shared seed's), the first epoch at
which the mean over seeds reaches 94% and the target, and the training steps to the end of the
run; ``--across-lengths`` pairs every row with the one leading row instead (the best search's
rows differ in length as well as design). Only validation accuracy is read: the test accuracy
the runner records is never shown, so it cannot choose the record."""

from __future__ import annotations

import argparse
import math
import pathlib
import re
import sys

import numpy as np

from jaxconv.analysis.tables import markdown_table
from jaxconv.experiment import report

DEFAULT = pathlib.Path("experiments/results/fashion_mnist/record_search")
PREFIX = "record-search"
#: The target on the validation split, in percent: a little above the record's 94% on test.
TARGET = 94.5


def folders(results: pathlib.Path, prefix: str = PREFIX) -> list[tuple[int, str, pathlib.Path]]:
    """``(epochs, trial, folder)`` of each ``<prefix>-e<N>[-<trial>]`` folder in ``results``
    (trial ``""`` for none), by length, then trial."""
    pattern = re.compile(rf"{re.escape(prefix)}-e(\d+)(?:-(.+))?$")
    return sorted((int(m.group(1)), m.group(2) or "", f) for f in results.iterdir()
                  if (m := pattern.match(f.name)) and f.is_dir())


def curves(study: pathlib.Path, trial: str = "") -> dict[str, dict[int, list[float]]]:
    """Each design's validation accuracy per epoch (percent), per finished seed, from the
    epoch records of its ``result.json``; a trial's designs are named ``design + trial``."""
    out: dict[str, dict[int, list[float]]] = {}
    for result in report.results(study):
        if report.finished(result):
            out.setdefault(label(result["variant"], trial), {})[result["seed"]] = [
                100 * r["val_accuracy"] for r in result["history"]]
    return out


def steps(study: pathlib.Path, trial: str = "") -> dict[str, int]:
    """Each design's training steps to the end of its run (its first finished seed's)."""
    out: dict[str, int] = {}
    for result in report.results(study):
        if report.finished(result):
            out.setdefault(label(result["variant"], trial), int(result["history"][-1]["step"]))
    return out


def label(design: str, trial: str) -> str:
    return f"{design} + {trial}" if trial else design


def paired(a: dict[int, float], b: dict[int, float]) -> str:
    """``a - b`` over the seeds both hold: the mean difference ± its standard error (std over
    the seeds, ``ddof=1``, over the square root of their number), in points."""
    differences = np.array([a[s] - b[s] for s in sorted(set(a) & set(b))])
    if differences.size < 2:
        return f"{differences.mean():+.2f} (1 seed)" if differences.size else "no shared seed"
    return (f"{differences.mean():+.2f} ± "
            f"{differences.std(ddof=1) / math.sqrt(differences.size):.2f}")


def first_epoch(mean_curve: np.ndarray, target: float) -> str:
    """The first epoch (from 1) at which ``mean_curve`` reaches ``target``, or "not reached"."""
    reached = np.flatnonzero(mean_curve >= target)
    return str(int(reached[0]) + 1) if reached.size else "not reached"


def rows(studies: list[tuple[int, str, pathlib.Path]], target: float) -> list[list[str]]:
    """The table rows of ``(epochs, trial, folder)`` studies compared with each other, in the
    order of their means; each is paired with the leading one."""
    found: dict[tuple[int, str], dict[int, list[float]]] = {}
    taken: dict[tuple[int, str], int] = {}
    for epochs, trial, study in studies:
        found.update({(epochs, d): c for d, c in curves(study, trial).items()})
        taken.update({(epochs, d): n for d, n in steps(study, trial).items()})
    last = {key: {seed: curve[-1] for seed, curve in seeds.items()}
            for key, seeds in found.items()}
    ranked = sorted(last, key=lambda k: -float(np.mean(list(last[k].values()))))
    # the leader: the highest mean among the rows with the most seeds, so that a row still
    # training is compared with a finished one, not the other way round
    most = max(len(seeds) for seeds in last.values())
    leader = next(k for k in ranked if len(last[k]) == most)
    out = []
    for key in ranked:
        values = np.array([last[key][s] for s in sorted(last[key])])
        behind = "-" if key == leader else paired(last[key], last[leader])
        length = min(len(c) for c in found[key].values())
        mean_curve = np.mean([c[:length] for c in found[key].values()], axis=0)
        out.append([str(key[0]), key[1], str(len(values)),
                    f"{values.mean():.2f} ± {values.std(ddof=1):.2f} %" if len(values) > 1
                    else f"{values[0]:.2f} % (one seed)",
                    " / ".join(f"{v:.2f}" for v in values), behind,
                    first_epoch(mean_curve, 94.0), first_epoch(mean_curve, target),
                    f"{taken[key]:,}"])
    return out


def table(results: pathlib.Path, target: float = TARGET, prefix: str = PREFIX,
          across_lengths: bool = False) -> str:
    """The search's Markdown table: each length's rows paired with that length's leader,
    lengths in increasing order, or with ``across_lengths`` every row with the one leader."""
    if not results.is_dir():
        raise SystemExit(f"RESULTS_DIR: {str(results)!r} is not a folder; expected the output "
                         f"folder of the search's config")
    found = folders(results, prefix)
    if not found:
        raise SystemExit(f"RESULTS_DIR: {str(results)!r} has no {prefix}-e<N> folders; "
                         "expected the output of configs/fashion_mnist/record_search.yaml "
                         "(--prefix record-search) or best_search.yaml (--prefix best-search)")
    groups = [found] if across_lengths else [
        [f for f in found if f[0] == epochs] for epochs in sorted({f[0] for f in found})]
    body = [row for group in groups for row in rows(group, target)]
    leader = "the leader" if across_lengths else "the length's leader"
    header = ["epochs", "design", "seeds", "val accuracy, last epoch (mean ± std)", "per seed",
              f"behind {leader}, paired (points ± SE)", "first epoch at 94% (mean)",
              f"first epoch at {target:g}% (mean)", "steps"]
    return markdown_table(header, "rlrrrrrrr", body)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="?", type=pathlib.Path, default=DEFAULT)
    parser.add_argument("--target", type=float, default=TARGET,
                        help=f"validation accuracy to reach, percent (default {TARGET})")
    parser.add_argument("--prefix", default=PREFIX,
                        help=f"the study folders' name before -e<N> (default {PREFIX})")
    parser.add_argument("--across-lengths", action="store_true",
                        help="pair every row with the one leader, not each length's rows "
                             "with that length's (every seed shares the split and the order "
                             "of the images, whatever the length)")
    args = parser.parse_args(argv)
    print(table(args.results, args.target, args.prefix, args.across_lengths))


if __name__ == "__main__":
    main(sys.argv[1:])
