"""Wall time of `jaxconv run`, seed by seed, start-up and compilation included, and how much
other work shared the cores meanwhile.

    python experiments/time_runs.py CONFIG [--seed N ...] [--variant NAME] [--set KEY=VALUE ...]
                                    [--allow-dirty] [--warm-cache] [--output FILE]

Each seed runs as its own ``jaxconv run CONFIG --variant NAME --seed N --quiet`` process, timed
from its start to its exit: what a user who types that command waits for, with the data
loading, model building, compilation, training, evaluation and report in it. By default each
process starts from empty caches: a new temporary folder for JAX's persistent compilation cache
(``JAX_COMPILATION_CACHE_DIR``, caching programs that took 0.5 s or more to compile, as
`jaxconv.environment.compilation_cache` does) and for jaxconv's autotuning timings
(``JAXCONV_AUTOTUNE_CACHE``), so it compiles everything it runs; the operating system's file
cache and the installed packages stay as they are. ``--warm-cache`` leaves jaxconv's own caches
in place, which a second run of the same steps loads from instead.

A timing says whether the machine was quiet (`jaxconv.experiment.cores`, Linux only): the
CPU time anything else spent on this process's cores while the run lasted (``other_cpu_s``;
the run's own is its whole process tree's), the time the hypervisor stole (``steal_s``), and
``quiet``, true when the other work stayed under 2% of the cores' capacity over the run; a
timing that was not quiet gives no speed figure. Pause background runs first (``kill -STOP``),
and let none of them hold the timed seed's folder.

A seed is timed only when it trains in full in the timed process: a seed with anything under
its folder already (a finished run would be skipped, a checkpoint resumed, a lock held by
another process skipped) is refused, and a run that did not end with a finished
``result.json`` of the config's every epoch writes nothing. The timings go to ``--output``
(default ``<study folder>/wall_seconds.json``), one entry per variant and seed with the
commit, versions, CPU and date that run's ``result.json`` records; timing a seed again replaces
its entry.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

OUTPUT = "wall_seconds.json"


def timed(command: list[str], env: dict[str, str]) -> dict[str, float | int | bool]:
    """Runs ``command`` and returns its wall seconds, exit code and own CPU seconds (its
    process tree's), and the other work's CPU seconds and the stolen seconds on this process's
    cores meanwhile, with whether that left them quiet (`jaxconv.experiment.cores.Watch`).

    Raises:
      SystemExit: ``/proc/stat`` could not be read, or lacked one of this process's cores."""
    from jaxconv.experiment.cores import STAT, Watch

    watch = Watch("children")
    code = subprocess.call(command, env=env)
    figures = watch.stop()
    if figures is None:
        raise SystemExit(f"{STAT}: unreadable, or without a cpuN line for each of the cores "
                         f"{sorted(watch.cores)}; the run exited with {code} and is not timed")
    return {**figures, "exit_code": code}


def seed_key(key: str) -> tuple[str, int]:
    """``variant/seed-N`` as (variant, N), so that seed 10 sorts after seed 2."""
    variant, _, seed = key.rpartition("/seed-")
    return variant, int(seed)


def merge(path: pathlib.Path, entries: dict[str, dict]) -> dict[str, dict]:
    """The timings already in ``path`` (none when it does not exist) with ``entries`` replacing
    the ones of the same variant and seed, in variant and seed order."""
    current = json.loads(path.read_text()) if path.is_file() else {}
    if not isinstance(current, dict):
        raise ValueError(f"--output: {str(path)!r} holds {type(current).__name__}; expected "
                         "the object of variant/seed timings this script writes")
    merged = {**current, **entries}
    return {key: merged[key] for key in sorted(merged, key=seed_key)}


def finished_run(result_path: pathlib.Path, epochs: int, since: float) -> dict | None:
    """The run's ``result.json`` if the timed process wrote it (modified after ``since``, a
    ``time.time()``) and it finished all ``epochs``; None otherwise."""
    if not result_path.is_file() or result_path.stat().st_mtime < since:
        return None
    result = json.loads(result_path.read_text())
    if result.get("status", "finished") != "finished" or len(result.get("history", [])) != epochs:
        return None
    return result


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=pathlib.Path)
    parser.add_argument("--seed", type=int, action="append", metavar="N",
                        help="a seed to time (repeatable; default: the config's seeds)")
    parser.add_argument("--variant", metavar="NAME",
                        help="the variant (required where the config has several)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="passed on to jaxconv run")
    parser.add_argument("--allow-dirty", action="store_true", help="passed on to jaxconv run")
    parser.add_argument("--warm-cache", action="store_true",
                        help="keep jaxconv's compilation and autotuning caches")
    parser.add_argument("--output", type=pathlib.Path,
                        help=f"the timings file (default <study folder>/{OUTPUT})")
    args = parser.parse_args(argv)
    from jaxconv.experiment.cores import STAT

    if not STAT.is_file():
        parser.error(f"{STAT} is missing: the other work on the cores is read from it, so "
                     "timings are taken on Linux only")

    from jaxconv.experiment import config as cfg
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
    seeds = list(dict.fromkeys(args.seed or config.seeds))
    unknown = [s for s in seeds if s not in config.seeds]
    if unknown:
        parser.error(f"--seed: {', '.join(map(str, unknown))} not in {args.config}'s seeds "
                     f"({', '.join(map(str, config.seeds))})")
    folders = {s: config.run_dir / variant / f"seed-{s}" for s in seeds}
    started = [s for s, folder in folders.items() if folder.exists()]
    if started:
        parser.error(f"--seed: {', '.join(map(str, started))} already under "
                     f"{config.run_dir / variant} (finished, part-trained or held by another "
                     "process): jaxconv run would skip or resume it, and the timing would not "
                     "be of a whole run. Time into another folder with --set output_dir=DIR, "
                     "or remove those seeds' folders")
    output = args.output or config.run_dir / OUTPUT
    command = ["jaxconv", "run", str(args.config), "--quiet", "--variant", variant,
               *(a for kv in args.set for a in ("--set", kv)),
               *(["--allow-dirty"] if args.allow_dirty else [])]
    cores = set(os.sched_getaffinity(0))
    for seed in seeds:
        env = dict(os.environ)
        cache = None if args.warm_cache else tempfile.mkdtemp(prefix="jaxconv-cold-")
        if cache:
            env.update({"JAX_COMPILATION_CACHE_DIR": os.path.join(cache, "xla"),
                        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5",
                        "JAXCONV_AUTOTUNE_CACHE": os.path.join(cache, "autotune.json")})
        since = time.time()
        try:
            figures = timed([sys.executable, "-m", *command, "--seed", str(seed)], env)
        finally:
            if cache:
                shutil.rmtree(cache, ignore_errors=True)
        result = finished_run(folders[seed] / "result.json", config.train.epochs, since)
        if figures["exit_code"] != 0 or result is None:
            raise SystemExit(f"jaxconv run of {variant} seed {seed} exited with "
                             f"{figures['exit_code']} without a finished result.json of "
                             f"{config.train.epochs} epochs under {folders[seed]}; nothing "
                             "written for it")
        origin = result.get("provenance", {})
        entry = {**figures, "cold_cache": cache is not None, "cores": sorted(cores),
                 **{k: origin.get(k) for k in ("cpu", "commit", "versions", "date")},
                 "command": shlex.join([*command, "--seed", str(seed)])}
        key = f"{variant}/seed-{seed}"
        before = merge(output, {}).get(key) if output.is_file() else None
        atomic_write_text(output, json.dumps(merge(output, {key: entry}), indent=1) + "\n")
        replaced = " (replaced a quiet timing)" if before and before.get("quiet") and \
            not entry["quiet"] else ""
        print(f"{variant} seed {seed}: {figures['wall_s']:.1f} s wall, other work "
              f"{figures['other_cpu_s']:.1f} CPU s ({'quiet' if entry['quiet'] else 'NOT quiet'})"
              f"; wrote {output}{replaced}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
