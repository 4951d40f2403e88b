"""A record's runs seed by seed: accuracy at the end, and the wall time of each seed's whole
`jaxconv run` as ``experiments/time_runs.py`` measured it.

    python experiments/record_seeds.py [RUN_DIR] [--goal PERCENT] [--minutes MINUTES]

Reads ``RUN_DIR`` (default ``experiments/results/fashion_mnist/record``): every ``result.json``
of its one design and ``wall_seconds.json``. One row per seed: the last epoch's test and
validation accuracy, the wall time (start to exit, compilation and evaluation included), the
training steps' share of it (the run's own ``train_time_s``), the CPU time other work took on
the cores meanwhile and whether that left the run quiet, and the CPU. Then the mean test
accuracy with its 95% interval (Student's t over the seeds) against ``--goal``, and the slowest
quiet seed against ``--minutes``. A seed that was not timed, or not quietly, gives no time.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from jaxconv.analysis.tables import markdown_table
from jaxconv.experiment import report

DEFAULT = pathlib.Path("experiments/results/fashion_mnist/record")


def seeds(run_dir: pathlib.Path) -> list[dict]:
    """Each finished seed of the folder's one design, by seed: ``seed``, ``test`` and ``val``
    (last epoch, percent; ``val`` None without a split), ``train_min`` (the training steps),
    and from ``wall_seconds.json`` ``wall_min`` (None unless timed quietly), ``other_cpu_s``
    and ``cpu`` (None where not timed)."""
    runs = [r for r in report.results(run_dir) if report.finished(r)]
    designs = sorted({r["variant"] for r in runs})
    if len(designs) > 1:
        raise SystemExit(f"{run_dir}: a record trains one design, found {designs}")
    path = run_dir / "wall_seconds.json"
    timings = json.loads(path.read_text()) if path.is_file() else {}
    out = []
    for run in sorted(runs, key=lambda r: r["seed"]):
        last = run["history"][-1]
        timing = timings.get(f"{run['variant']}/seed-{run['seed']}", {})
        wall = timing.get("wall_s")
        quiet = bool(timing.get("quiet")) and isinstance(wall, (int, float))
        out.append({"seed": run["seed"], "test": 100 * last["test_accuracy"],
                    "val": 100 * last["val_accuracy"] if "val_accuracy" in last else None,
                    "train_min": run["train_time_s"] / 60,
                    "wall_min": wall / 60 if quiet else None,
                    "other_cpu_s": timing.get("other_cpu_s"), "cpu": timing.get("cpu")})
    return out


def table(found: list[dict]) -> str:
    """The seeds as a markdown table; the training steps' minutes only beside a quiet wall
    time (a shared run's own clock says nothing of the speed either)."""
    header = ["seed", "test accuracy", "val accuracy", "wall time", "of it training steps",
              "other work on the cores (CPU s)", "CPU"]
    return markdown_table(header, "rrrrrrl", [[
        str(s["seed"]), f"{s['test']:.2f} %", "-" if s["val"] is None else f"{s['val']:.2f} %",
        "not timed quietly" if s["wall_min"] is None else f"{s['wall_min']:.1f} min",
        "-" if s["wall_min"] is None else f"{s['train_min']:.1f} min",
        "-" if s["other_cpu_s"] is None else f"{s['other_cpu_s']:.1f}", s["cpu"] or "-"]
        for s in found])


def summary(found: list[dict], goal: float, minutes: float, count: int) -> str:
    """The mean test accuracy with its 95% interval against ``goal`` (judged once ``count``
    seeds have finished) and the slowest quiet seed against ``minutes``."""
    from scipy import stats as scipy_stats

    accs = np.array([s["test"] for s in found])
    mean = accs.mean()
    text = f"{len(found)} of {count} seeds: mean test accuracy {mean:.2f}%"
    if len(accs) > 1:
        std = accs.std(ddof=1)
        half = float(scipy_stats.t.ppf(0.975, len(accs) - 1)) * std / np.sqrt(len(accs))
        text += f" ± {std:.2f} (95% interval of the mean {mean - half:.2f}-{mean + half:.2f}%)"
    text += (f", {mean - goal:+.2f} points from the goal of {goal:g}%" if len(found) >= count
             else f" so far (the goal, {goal:g}%, is judged over {count} seeds)")
    walls = [s["wall_min"] for s in found if s["wall_min"] is not None]
    if walls:
        text += (f"; slowest quiet seed {max(walls):.1f} min against the goal of {minutes:g} "
                 f"min ({len(walls)} of {len(found)} seeds timed quietly)")
    return text + "."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", nargs="?", type=pathlib.Path, default=DEFAULT)
    parser.add_argument("--goal", type=float, default=94.0, help="mean test accuracy, percent")
    parser.add_argument("--minutes", type=float, default=5.0, help="wall minutes per seed")
    parser.add_argument("--seeds", type=int, default=5, help="seeds the goal is judged over")
    args = parser.parse_args(argv)
    if not args.run_dir.is_dir():
        raise SystemExit(f"{args.run_dir}: no such results folder")
    found = seeds(args.run_dir)
    if not found:
        raise SystemExit(f"{args.run_dir}: no finished runs")
    print(table(found))
    print()
    print(summary(found, args.goal, args.minutes, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
