"""Study 4's designs, by a rule fixed before Study 3 finished: the ``--top`` designs of Study 3
with the highest mean validation accuracy at the last epoch over every seed of its config,
and the designs named by ``--with`` (the ResNet bottleneck) where they are not among them.
Test accuracy plays no part: it is never read.

    python experiments/convergence_designs.py [STUDY_DIR] [--top N] [--with NAME ...]

Reads ``STUDY_DIR`` (default ``experiments/results/fashion_mnist/bottlenecks_record``): its
``config.yaml`` (the designs and seeds) and every finished ``result.json``. It refuses to choose
while a design lacks a seed of the config (unfinished), so that a partial study cannot pick.
A design with a diverged seed ranks below every design without one. Prints the ranking, the
paired difference between the last design chosen and the first left out (seed by seed, with
its standard error, to show whether the cut falls in a near-tie), and the chosen designs.
"""

import argparse
import dataclasses
import math
import pathlib
import sys

import numpy as np
import yaml

from jaxconv.analysis.tables import markdown_table
from jaxconv.experiment import report

DEFAULT = pathlib.Path("experiments/results/fashion_mnist/bottlenecks_record")


@dataclasses.dataclass(frozen=True)
class Design:
    """A design's final validation accuracy per finished seed and its diverged seeds."""

    name: str
    accuracy: dict[int, float]
    diverged: tuple[int, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.accuracy.values()))) if self.accuracy else math.nan


def designs(study: pathlib.Path) -> list[Design]:
    """Every design of ``study``'s config with its runs; a `ValueError` naming the runs that
    are missing where any design lacks a seed of the config."""
    path = study / "config.yaml"
    if not path.is_file():
        raise ValueError(f"STUDY_DIR: {str(study)!r} has no config.yaml; expected a study "
                         "folder written by jaxconv run")
    config = yaml.safe_load(path.read_text())
    names = [v["name"] for v in config["variants"]]
    seeds = sorted(config["seeds"])
    accuracy = {n: {} for n in names}
    diverged = {n: [] for n in names}
    for result in report.results(study):
        name, seed = result["variant"], int(result["seed"])
        if report.finished(result):
            accuracy[name][seed] = float(result["history"][-1]["val_accuracy"])
        else:
            diverged[name].append(seed)
    missing = [f"{n}/seed-{k}" for n in names for k in seeds
               if k not in accuracy[n] and k not in diverged[n]]
    if missing:
        raise ValueError(f"STUDY_DIR: {str(study)!r}: {len(missing)} of "
                         f"{len(names) * len(seeds)} runs have neither finished nor diverged "
                         f"({', '.join(missing)}); the rule ranks the designs over every seed "
                         "of the config")
    return [Design(n, accuracy[n], tuple(sorted(diverged[n]))) for n in names]


def ranking(found: list[Design]) -> list[Design]:
    """Designs without a diverged seed first, then those with one, then those with no finished
    seed; each group by mean validation accuracy, highest first (the config's order on a
    tie)."""
    return sorted(found, key=lambda d: (bool(d.diverged), not d.accuracy,
                                        -d.mean if d.accuracy else 0.0))


def cut(last: Design, next_: Design) -> tuple[float, float, int]:
    """The paired difference ``last - next_`` over the seeds both finished: its mean and
    standard error in points and the number of seeds (NaN error below two seeds)."""
    seeds = sorted(set(last.accuracy) & set(next_.accuracy))
    d = 100 * np.array([last.accuracy[k] - next_.accuracy[k] for k in seeds])
    if not len(d):
        return math.nan, math.nan, 0
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
    return float(d.mean()), se, len(d)


def check(ranked: list[Design], top: int, extra: list[str]) -> None:
    """A `ValueError` naming ``--top`` or ``--with`` where it does not fit the study."""
    names = [d.name for d in ranked]
    unknown = [n for n in extra if n not in names]
    if unknown:
        raise ValueError(f"--with: {', '.join(unknown)} not a design of the study; designs: "
                         f"{', '.join(names)}")
    if not 1 <= top <= len(names):
        raise ValueError(f"--top: {top} must be between 1 and the study's {len(names)} designs")


def chosen(ranked: list[Design], top: int, extra: list[str]) -> list[str]:
    """The first ``top`` of ``ranked``, then each of ``extra`` not among them."""
    check(ranked, top, extra)
    picked = [d.name for d in ranked[:top]]
    return picked + [n for n in extra if n not in picked]


def left_out(ranked: list[Design], top: int, extra: list[str]) -> Design | None:
    """The best-ranked design the rule leaves out: after the first ``top``, and not one of
    ``extra`` (chosen anyway); None where every design is chosen."""
    return next((d for d in ranked[top:] if d.name not in extra), None)


def text(found: list[Design], top: int, extra: list[str]) -> str:
    """The ranking as a Markdown table, the cut and the chosen designs."""
    ranked = ranking(found)
    check(ranked, top, extra)
    rows = []
    for rank, d in enumerate(ranked, 1):
        a = 100 * np.array(list(d.accuracy.values()))
        spread = f" ± {a.std(ddof=1):.2f}" if len(a) > 1 else ""
        rows.append([str(rank), d.name, f"{a.mean():.2f}{spread} %" if len(a) else "-",
                     str(len(a)), str(len(d.diverged))])
    lines = [markdown_table(["rank", "design", "val accuracy (mean ± std)", "seeds",
                             "diverged"], "rlrrr", rows), ""]
    out = left_out(ranked, top, extra)
    if out is not None:
        mean, se, n = cut(ranked[top - 1], out)
        error = "-" if math.isnan(se) else f"{se:.2f}"
        lines.append(f"The cut: {ranked[top - 1].name} (chosen) against {out.name} (the best "
                     f"left out), paired over {n} seeds: {mean:+.2f} ± {error} points (± one "
                     "standard error; a seed's two runs may have trained on different CPU "
                     "classes, whose numerics differ).")
    lines.append(f"Chosen: {', '.join(chosen(ranked, top, extra))}.")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", nargs="?", type=pathlib.Path, default=DEFAULT,
                        metavar="STUDY_DIR")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--with", dest="extra", nargs="*", default=["bottleneck"],
                        metavar="NAME")
    args = parser.parse_args(argv)
    try:
        print(text(designs(args.study), args.top, args.extra))
    except ValueError as error:
        parser.error(str(error))


if __name__ == "__main__":
    main(sys.argv[1:])
