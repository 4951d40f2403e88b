"""Wall time of `jaxconv run`, seed by seed, start-up and compilation included, and how much
other work shared the cores meanwhile.

    python experiments/time_runs.py CONFIG [--seed N ...] [--variant NAME] [--set KEY=VALUE ...]
                                    [--warm-cache] [--output FILE]

Each seed runs as its own ``jaxconv run CONFIG --seed N --quiet`` process (and ``--variant``
where given), timed from its start to its exit: what a user who types that command waits for,
with the data loading, model building, compilation, training, evaluation and report in it. By
default every process gets an empty persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``
set to a new temporary folder), so each compiles from scratch as on a fresh machine;
``--warm-cache`` leaves jaxconv's own cache in place, which a second run of the same steps loads
from instead.

A timing says whether the machine was quiet: from ``/proc/stat`` the CPU time the whole machine
spent busy while the run lasted, less the run's own (its process tree's user and system time),
is ``other_cpu_s``, the work anything else did on the cores meanwhile; ``quiet`` is true when
that stays under 2% of the cores' capacity over the run. A timing that was not quiet gives no
speed figure. Pause background runs first (``kill -STOP``).

The runs train into the config's study folder like any ``jaxconv run`` (or wherever ``--set
output_dir=...`` sends them); a seed that has finished there already is refused, since its
``jaxconv run`` would skip it and the timing would be of the skip. The timings go to
``--output`` (default ``<study folder>/wall_seconds.json``), one entry per variant and seed,
each with its own date, commit, CPU and load; timing a seed again replaces its entry.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

OUTPUT = "wall_seconds.json"
#: The share of the cores' capacity over a run that other work may use for it to count as quiet.
QUIET_SHARE = 0.02


def busy_seconds(stat: str) -> float:
    """CPU seconds the machine has spent busy since boot, all cores together, from the text of
    ``/proc/stat`` (its first, ``cpu``, line: every state but idle and iowait)."""
    fields = stat.splitlines()[0].split()
    if fields[0] != "cpu":
        raise ValueError(f"stat: first line {stat.splitlines()[0]!r}; expected the 'cpu' line "
                         "of /proc/stat")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User and system CPU seconds of this process's finished child processes so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def quiet(other_cpu_s: float, wall_s: float, cores: int) -> bool:
    """Whether the other work during a run stayed under `QUIET_SHARE` of the cores' capacity."""
    return other_cpu_s <= QUIET_SHARE * wall_s * cores


def timed(command: list[str], env: dict[str, str]) -> dict[str, float | int]:
    """Runs ``command`` and returns its wall seconds, exit code, its own CPU seconds and the
    other work's CPU seconds on the machine meanwhile."""
    stat = pathlib.Path("/proc/stat")
    busy, own = busy_seconds(stat.read_text()), children_cpu_seconds()
    start = time.perf_counter()
    code = subprocess.call(command, env=env)
    wall = time.perf_counter() - start
    busy, own = busy_seconds(stat.read_text()) - busy, children_cpu_seconds() - own
    return {"wall_s": wall, "exit_code": code, "own_cpu_s": own,
            "other_cpu_s": max(0.0, busy - own)}


def merge(path: pathlib.Path, entries: dict[str, dict]) -> dict[str, dict]:
    """The timings already in ``path`` (none when it does not exist) with ``entries`` replacing
    the ones of the same variant and seed."""
    current = json.loads(path.read_text()) if path.is_file() else {}
    if not isinstance(current, dict):
        raise ValueError(f"--output: {str(path)!r} holds {type(current).__name__}; expected "
                         "the object of variant/seed timings this script writes")
    return dict(sorted({**current, **entries}.items()))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=pathlib.Path)
    parser.add_argument("--seed", type=int, action="append", metavar="N",
                        help="a seed to time (repeatable; default: the config's seeds)")
    parser.add_argument("--variant", metavar="NAME",
                        help="the variant (required where the config has several)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed on to jaxconv run")
    parser.add_argument("--warm-cache", action="store_true",
                        help="keep jaxconv's persistent compilation cache")
    parser.add_argument("--output", type=pathlib.Path,
                        help=f"the timings file (default <study folder>/{OUTPUT})")
    args = parser.parse_args(argv)

    from jaxconv.experiment import config as cfg
    from jaxconv.experiment import provenance
    from jaxconv.tuning.files import atomic_write_text

    config = cfg.load(args.config, args.set)
    names = [v.name for v in config.variants]
    if args.variant is None and len(names) > 1:
        parser.error(f"--variant: {args.config} has {len(names)} variants ({', '.join(names)}); "
                     "name the one to time")
    variant = args.variant or names[0]
    if variant not in names:
        parser.error(f"--variant: {variant!r} is not in {args.config}; variants: "
                     f"{', '.join(names)}")
    seeds = args.seed or list(config.seeds)
    study = pathlib.Path(config.output_dir) / config.name
    finished = [s for s in seeds if (study / variant / f"seed-{s}" / "result.json").exists()]
    if finished:
        parser.error(f"--seed: {', '.join(map(str, finished))} finished already under {study}; "
                     "jaxconv run would skip them. Time into another folder with --set "
                     "output_dir=DIR, or remove those seeds' folders")
    output = args.output or study / OUTPUT
    jaxconv = [sys.executable, "-m", "jaxconv", "run", str(args.config), "--quiet",
               "--variant", variant, *(a for kv in args.set for a in ("--set", kv))]
    cores = os.cpu_count() or 1
    for seed in seeds:
        cache = None if args.warm_cache else tempfile.mkdtemp(prefix="jaxconv-xla-")
        env = dict(os.environ)
        if cache:
            env["JAX_COMPILATION_CACHE_DIR"] = cache
        origin = provenance.current()
        load = os.getloadavg()
        try:
            figures = timed([*jaxconv, "--seed", str(seed)], env)
        finally:
            if cache:
                shutil.rmtree(cache, ignore_errors=True)
        if figures["exit_code"] != 0:
            raise SystemExit(f"jaxconv run of {variant} seed {seed} exited with "
                             f"{figures['exit_code']}; nothing written for it")
        entry = {**figures, "quiet": quiet(figures["other_cpu_s"], figures["wall_s"], cores),
                 "cold_cache": cache is not None, "cores": cores, "cpu": origin["cpu"],
                 "commit": origin["commit"], "versions": origin["versions"],
                 "date": origin["date"], "load_average_before": list(load),
                 "command": " ".join(["jaxconv", *jaxconv[3:], "--seed", str(seed)])}
        atomic_write_text(output, json.dumps(merge(output, {f"{variant}/seed-{seed}": entry}),
                                             indent=1) + "\n")
        print(f"{variant} seed {seed}: {figures['wall_s']:.1f} s wall, other work "
              f"{figures['other_cpu_s']:.1f} CPU s ({'quiet' if entry['quiet'] else 'NOT quiet'})"
              f"; wrote {output}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
