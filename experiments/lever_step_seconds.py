"""Seconds per training step of each lever trial, timed with nothing else on the cores.

    python experiments/lever_step_seconds.py [--results DIR] [--repeats N] [TRIAL ...]

The screen's own clocks (``train_time_s`` in ``metrics.jsonl``) ran while other work shared
the cores, so they give no speed figure. This builds each trial's model and training step from
its recorded ``config.yaml`` (seed 0; the same policy version and recipe the trial trained
with), times the step `repeats` times with `jaxconv.train.step_seconds` (one call of as many
steps as ``fit`` runs per call, after a warm-up call) and merges the medians into
``<DIR>/step_seconds.json`` with the CPU and each timing's commit and date, for
``experiments/lever_table.py`` to multiply by each run's steps to 94% validation accuracy.
Every trial folder under DIR is timed unless TRIALs are named. Run it with nothing else on the
cores (pause background runs with ``kill -STOP``), and time every trial in one sitting: the
same CPU model has run the same step 30% slower from one day to the next, so timings from
different sittings are not comparable (each records its date). It runs under the settings
``jaxconv run`` trains with (`jaxconv.environment.start_command`).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys

DEFAULT = pathlib.Path("experiments/results/fashion_mnist/levers")
PREFIX = "levers-"
OUTPUT = "step_seconds.json"


def time_trial(folder: pathlib.Path, repeats: int) -> list[float]:
    """Seconds per step of the trial in ``folder``, one figure per repeat."""
    from jaxconv import data, train
    from jaxconv.experiment import config as cfg
    from jaxconv.experiment import trained

    config = cfg.load(folder / "config.yaml")
    images = data.load(config.data["name"], "train", config.data.get("data_dir"))
    model = trained.build_model(config.variants[0].model, images, config.seeds[0])
    steps = train.build_steps(model, images, config.train)
    return [train.step_seconds(steps, model, images, config.train) for _ in range(repeats)]


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
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats: {args.repeats} is not a whole number >= 1")
    chosen = folders(args.results, args.trials)

    from jaxconv.experiment import provenance
    from jaxconv.tuning.files import atomic_write_text

    origin = provenance.current()
    path = args.results / OUTPUT
    record = json.loads(path.read_text()) if path.is_file() else {}
    if record and record.get("cpu") != origin["cpu"]:
        raise SystemExit(f"{path}: timed on {record['cpu']!r}, this machine is "
                         f"{origin['cpu']!r}; time every trial on one CPU (move the file away "
                         "to start over)")
    timed = dict(record.get("trials", {}))
    for folder in chosen:
        name = folder.name.removeprefix(PREFIX)
        seconds = time_trial(folder, args.repeats)
        timed[name] = {"seconds_per_step": statistics.median(seconds), "repeats": seconds,
                       "commit": origin["commit"], "versions": origin["versions"],
                       "date": origin["date"]}
        print(f"{name}: {timed[name]['seconds_per_step']:.4f} s/step (repeats "
              f"{', '.join(f'{s:.4f}' for s in seconds)})", flush=True)
        # written after each trial, so a stopped timing keeps what it measured
        atomic_write_text(path, json.dumps({"cpu": origin["cpu"],
                                            "trials": dict(sorted(timed.items()))},
                                           indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    from jaxconv import environment

    environment.start_command([sys.executable, *sys.argv])
    main(sys.argv[1:])
