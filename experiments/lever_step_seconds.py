"""Seconds per training step of each lever trial, timed in one sitting with nothing else on the
cores.

    python experiments/lever_step_seconds.py [--results DIR] [--rounds N] [TRIAL ...]

The screen's own clocks (``train_time_s`` in ``metrics.jsonl``) ran while other work shared
the cores, so they give no speed figure. This builds each trial's model and training step from
its recorded ``config.yaml`` (seed 0; the same policy version and recipe the trial trained
with), then times every trial once per round, `rounds` rounds, each round in a rotated order so
that a drift during the sitting spreads over every trial (`jaxconv.train.step_seconds`: one
call of as many steps as ``fit`` runs per call, after a warm-up call). It writes the medians,
every round's figure, the formulation choices the timed steps were built under (for
``lever_table.py`` to check against the runs' own) and the load average around the sitting
to ``<DIR>/step_seconds.json``, replacing the file: the same CPU model has timed the same step
0.161 and 0.207 s on two days (policy version 4's inverted residual, `jaxconv run --plan`,
nothing else running), so timings from different sittings are not comparable and are never
merged. Every trial folder under DIR is timed unless TRIALs are named. Run it with nothing
else on the cores (pause background runs with ``kill -STOP``); it runs under the settings
``jaxconv run`` trains with (`jaxconv.environment.start_command`).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys

DEFAULT = pathlib.Path("experiments/results/fashion_mnist/levers")
PREFIX = "levers-"
OUTPUT = "step_seconds.json"


def build(folder: pathlib.Path):
    """The trial's timing call (seconds per step, one figure a call) and the choices its steps
    were built under."""
    from jaxconv import data, train
    from jaxconv.experiment import config as cfg
    from jaxconv.experiment import trained

    config = cfg.load(folder / "config.yaml")
    images = data.load(config.data["name"], "train", config.data.get("data_dir"))
    model = trained.build_model(config.variants[0].model, images, config.seeds[0])
    steps = train.build_steps(model, images, config.train)

    def time_once() -> float:
        return train.step_seconds(steps, model, images, config.train)

    return time_once, dict(steps.choices)


def rounds_order(names: list[str], rounds: int) -> list[list[str]]:
    """The trials' order in each round: round ``r`` starts ``r`` places further along."""
    return [names[r % len(names):] + names[:r % len(names)] for r in range(rounds)]


def folders(results: pathlib.Path, names: list[str]) -> list[pathlib.Path]:
    """The trial folders to time: every ``levers-*`` with a config, or the named ones."""
    found = {f.name.removeprefix(PREFIX): f for f in sorted(results.glob(f"{PREFIX}*"))
             if (f / "config.yaml").is_file()}
    if not found:
        raise SystemExit(f"--results: {str(results)!r} has no {PREFIX}*/config.yaml; expected "
                         "the lever screen's output (experiments/lever_screen.sh)")
    unknown = [n for n in names if n not in found]
    if unknown:
        raise SystemExit(f"TRIAL: {', '.join(unknown)} not under {results}; trials: "
                         f"{', '.join(found)}")
    return [found[n] for n in names] if names else list(found.values())


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("trials", nargs="*", metavar="TRIAL")
    parser.add_argument("--results", type=pathlib.Path, default=DEFAULT)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds: {args.rounds} must be an integer >= 1")
    chosen = {f.name.removeprefix(PREFIX): f for f in folders(args.results, args.trials)}

    from jaxconv.experiment import provenance
    from jaxconv.tuning.files import atomic_write_text

    origin = provenance.current()
    built = {name: build(folder) for name, folder in chosen.items()}
    load_before = os.getloadavg()
    figures: dict[str, list[float]] = {name: [] for name in chosen}
    for order in rounds_order(list(chosen), args.rounds):
        for name in order:
            figures[name].append(built[name][0]())
    load_after = os.getloadavg()
    for name, seconds in figures.items():
        print(f"{name}: {statistics.median(seconds):.4f} s/step (rounds "
              f"{', '.join(f'{s:.4f}' for s in seconds)})", flush=True)
    path = args.results / OUTPUT
    atomic_write_text(path, json.dumps({
        "cpu": origin["cpu"], "commit": origin["commit"], "versions": origin["versions"],
        "date": origin["date"], "rounds": args.rounds,
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "trials": {name: {"seconds_per_step": statistics.median(figures[name]),
                          "rounds": figures[name], "choices": built[name][1]}
                   for name in sorted(chosen)}}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    from jaxconv import environment

    environment.start_command([sys.executable, *sys.argv])
    main(sys.argv[1:])
