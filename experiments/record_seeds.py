"""A record's runs seed by seed: accuracy at the end, and the wall time of each seed's whole
`jaxconv run` as ``experiments/time_runs.py`` measured it.

    python experiments/record_seeds.py [RUN_DIR] [--goal PERCENT] [--minutes MINUTES]

Reads ``RUN_DIR`` (default ``experiments/results/fashion_mnist/record``): every ``result.json``
of its one design and ``wall_seconds.json``. One row per seed: the last epoch's test and
validation accuracy (or "diverged"), the wall time (start to exit, compilation and evaluation
included), the training steps' share of it (the run's own ``train_time_s``), the CPU time other
work took on the cores meanwhile and whether that left the run quiet, and the CPU. Then the mean
test accuracy with its 95% interval (Student's t over the seeds) against ``--goal``, and the
slowest quiet seed against ``--minutes``. A seed that was not timed, or not quietly, gives no
time."""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from jaxconv.analysis.tables import markdown_table
from jaxconv.experiment import report

DEFAULT = pathlib.Path("experiments/results/fashion_mnist/record")


def quiet_wall(entry: dict, run: dict) -> float | None:
    """The wall seconds of a ``wall_seconds.json`` entry, where it timed this very run (the
    same commit and start date as its ``result.json`` records) from empty caches on a quiet
    machine; otherwise None: a seed trained again untimed keeps no old figure, and a timing
    from warm caches is not a whole run's."""
    wall = entry.get("wall_s")
    origin = run.get("provenance", {})
    same = all(entry.get(key) == origin[key] for key in ("commit", "date") if key in origin)
    if (entry.get("quiet") is True and entry.get("cold_cache") is True and same
            and isinstance(wall, (int, float))):
        return float(wall)
    return None


def seeds(run_dir: pathlib.Path, runs: list[dict] | None = None) -> list[dict]:
    """Each seed of the folder's one design, by seed: ``seed``, ``finished`` (False for a
    diverged run), ``test`` and ``val`` (last epoch, percent; ``val`` None without a split,
    both None for a diverged run), ``train_min`` (the training steps), and from
    ``wall_seconds.json`` ``timed`` (an entry exists), ``wall_min`` (None unless
    `quiet_wall`), ``other_cpu_s`` and ``cpu``. ``runs``: the folder's ``report.results``,
    where the caller has read them already."""
    runs = report.results(run_dir) if runs is None else runs
    designs = sorted({r["variant"] for r in runs})
    if len(designs) > 1:
        raise ValueError(f"{run_dir}: a record trains one design, found {designs}")
    path = run_dir / "wall_seconds.json"
    timings = json.loads(path.read_text()) if path.is_file() else {}
    out = []
    for run in sorted(runs, key=lambda r: r["seed"]):
        done = report.finished(run)
        last = run["history"][-1] if done else {}
        timing = timings.get(f"{run['variant']}/seed-{run['seed']}", {})
        wall = quiet_wall(timing, run)
        out.append({"seed": run["seed"], "finished": done,
                    "test": 100 * last["test_accuracy"] if done else None,
                    "val": 100 * last["val_accuracy"] if "val_accuracy" in last else None,
                    "train_min": run["train_time_s"] / 60 if "train_time_s" in run else None,
                    "timed": bool(timing), "wall_min": None if wall is None else wall / 60,
                    "other_cpu_s": timing.get("other_cpu_s"), "cpu": timing.get("cpu")})
    return out


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} %"


def table(found: list[dict]) -> str:
    """The seeds as a markdown table; the training steps' minutes only beside a quiet wall
    time (a shared run's own clock says nothing of the speed either)."""
    header = ["seed", "test accuracy", "val accuracy", "wall time", "of it training steps",
              "other work on the cores (CPU s)", "CPU"]
    return markdown_table(header, "rrrrrrl", [[
        str(s["seed"]), _percent(s["test"]) if s["finished"] else "diverged",
        _percent(s["val"]),
        (f"{s['wall_min']:.1f} min" if s["wall_min"] is not None else
         "not timed quietly" if s["timed"] else "not timed"),
        "-" if s["wall_min"] is None or s["train_min"] is None else f"{s['train_min']:.1f} min",
        "-" if s["other_cpu_s"] is None else f"{s['other_cpu_s']:.1f}", s["cpu"] or "-"]
        for s in found])


def verdict(value: float, goal: float, unit: str, higher: bool) -> str:
    """Whether ``value`` meets ``goal`` (at least it where ``higher``, else at most), judged
    unrounded, and by how much: a near miss never reads as "by 0.00"."""
    margin = value - goal if higher else goal - value
    size = abs(margin)
    shown = f"{size:.2f}" if size >= 0.005 else "less than 0.01"
    return f"reached by {shown} {unit}" if margin >= 0 else f"missed by {shown} {unit}"


def summary(found: list[dict], goal: float, minutes: float, count: int) -> str:
    """The mean test accuracy (± the standard deviation over seeds, with the mean's 95%
    interval) against ``goal``, judged once ``count`` seeds have ended, a diverged seed
    counting as a miss; and the slowest quiet seed against ``minutes``, judged once every
    one of ``count`` seeds has a quiet timing."""
    from scipy import stats as scipy_stats

    diverged = sum(not s["finished"] for s in found)
    accs = np.array([s["test"] for s in found if s["finished"]])
    text = f"{len(found)} of {count} seeds"
    if diverged:
        text += f" ({diverged} diverged)"
    if len(accs):
        mean = accs.mean()
        text += f": mean test accuracy {mean:.2f}%"
        if len(accs) > 1:
            std = accs.std(ddof=1)
            half = float(scipy_stats.t.ppf(0.975, len(accs) - 1)) * std / np.sqrt(len(accs))
            text += (f", standard deviation {std:.2f} over seeds (95% interval of the mean "
                     f"{mean - half:.2f}-{mean + half:.2f}%)")
    if diverged:
        text += f"; the goal of {goal:g}% is missed: a seed diverged"
    elif len(found) >= count:
        text += f"; the goal of {goal:g}%: {verdict(float(accs.mean()), goal, 'points', True)}"
    else:
        text += f" so far (the goal, {goal:g}%, is judged over {count} seeds)"
    walls = [s["wall_min"] for s in found if s["wall_min"] is not None]
    if walls:
        text += (f"; slowest quiet seed {max(walls):.1f} min "
                 f"({len(walls)} of {count} seeds timed quietly)")
        if len(walls) >= count:
            text += f"; the goal of {minutes:g} min: {verdict(max(walls), minutes, 'min', False)}"
        else:
            text += f", against the goal of {minutes:g} min"
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
    try:
        found = seeds(args.run_dir)
    except ValueError as error:
        raise SystemExit(str(error)) from None
    if not found:
        raise SystemExit(f"{args.run_dir}: no runs")
    print(table(found))
    print()
    print(summary(found, args.goal, args.minutes, args.seeds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
