"""Runs an experiment: every variant × seed, resumable, then the report.

Run folder ``<output_dir>/<name>/``: ``config.yaml`` (resolved), ``command.txt`` (every command
that trained in it, one per line), one folder per variant and seed (``<variant>/seed-<k>/`` with
the `jaxconv.train.fit` files, `SEGMENTS` (each process that trained it) and, once finished
or diverged, ``result.json`` with the run's provenance and the choices it trained under, see
`RESULT_SCHEMA`), and the report. Running the
same command again skips finished and diverged runs and resumes an interrupted one from its
last checkpoint (refused when the choices resolve otherwise now). A lock per seed folder lets
several processes share a study: each trains the seeds no other process holds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import pathlib
import shlex
from collections.abc import Callable, Sequence
from typing import Any

import jax
import yaml

from jaxconv import analysis, data, models, train
from jaxconv._hints import did_you_mean
from jaxconv.experiment import cores, provenance, report, trained
from jaxconv.experiment.config import ConfigError, ExperimentConfig, Variant
from jaxconv.train import hosts
from jaxconv.train.logging import read_jsonl
from jaxconv.tuning.files import atomic_write_text

LOCK = ".lock"
#: The version of ``result.json``'s fields. 2 added ``schema_version`` and ``choices`` (the
#: compile-option set and what else changes the numbers, `jaxconv.train.options.choices`);
#: files without ``schema_version`` are version 1 and lack them. 3 added ``split_seed`` (the
#: seed of the validation split; in older files the run's own seed chose it). 4 added
#: ``segments``: each `jaxconv run` process that trained the run, in order, with the step it
#: started from and its provenance (a run stopped and resumed has several; ``provenance`` is
#: the last one's). 5 added ``cores``: the other work on the cores while the process that
#: finished the run trained it (`jaxconv.experiment.cores.Watch`, from the step it started at,
#: with the run's process count: process 0 watches only its own host; null where
#: ``/proc/stat`` cannot be read), which tells whether its clock is a speed figure.
RESULT_SCHEMA = 5
#: The run folder's record of the processes that trained it (`result.json`'s ``segments``).
SEGMENTS = "segments.jsonl"
#: What a recipe key that a run folder's ``config.yaml`` lacks meant when it was written: the
#: value that reproduces those runs (a ``Recipe`` field's default otherwise). Folders written
#: before policy versions existed ran the lax formulations' picks, version 1's.
RECIPE_BEFORE = {"split_seed": None, "policy_version": 1}


@contextlib.contextmanager
def run_lock(folder: pathlib.Path):
    """Holds ``folder/.lock`` for this process; yields False when another process holds it.

    The lock is the kernel's (``flock``), so it goes with the process however that ends.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _epochs(folder: pathlib.Path) -> list[dict[str, Any]]:
    """The epoch records a run wrote before it stopped."""
    return [r for r in read_jsonl(folder / "metrics.jsonl") if r.get("kind") == "epoch"]


def _resolved(config: ExperimentConfig) -> dict[str, Any]:
    """The config with every variant's model spelled out (what the results depend on)."""
    raw = dict(config.raw)
    raw["train"] = {k: getattr(config.train, k) for k in config.train.__dataclass_fields__}
    raw["variants"] = [{"name": v.name, "model": v.model.to_dict()} for v in config.variants]
    raw.pop("model", None)
    raw["seeds"] = list(config.seeds)
    raw["output_dir"] = config.output_dir
    return raw


def _check_run_dir(config: ExperimentConfig, resolved: dict[str, Any]) -> None:
    """Refuses a run folder whose finished runs came from other data, recipe or models.

    Seeds and variants may be added to a study: only the shared keys, and the model of any
    variant already in the folder, must match.
    """
    path = config.run_dir / "config.yaml"
    if path.is_file():
        previous = yaml.safe_load(path.read_text())
        ignored = ("seeds", "variants", "compare_with")  # compare_with: the report's only
        mine = {k: v for k, v in resolved.items() if k not in ignored}
        theirs = {k: v for k, v in previous.items() if k not in ignored}
        if isinstance(theirs.get("train"), dict):
            theirs["train"] = {**_recipe_before(), **theirs["train"]}
        if mine != theirs:
            changed = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise ConfigError(
                f"{config.run_dir} holds runs of a different config (differs in: "
                f"{', '.join(changed)}); use another name or output_dir, or remove that folder")
    for variant in config.variants:
        spec_path = config.run_dir / variant.name / "model.yaml"
        if spec_path.is_file() and models.ModelSpec.from_saved(
                yaml.safe_load(spec_path.read_text())) != variant.model:
            raise ConfigError(
                f"{config.run_dir / variant.name} holds runs of a different model for variant "
                f"{variant.name!r}; rename the variant or remove that folder")


def _recipe_before() -> dict[str, Any]:
    """Every recipe key with the value a ``config.yaml`` written before it existed meant."""
    return {**{f.name: f.default for f in dataclasses.fields(train.Recipe)}, **RECIPE_BEFORE}


def rows(config: ExperimentConfig, variants: Sequence[str] = (),
         seeds: Sequence[int] = ()) -> tuple[list[Variant], list[int]]:
    """The variants and seeds of ``config`` named (all of them where none are named).

    Raises:
      ConfigError: a name is not one of the config's variants, or a seed not one of its seeds.
    """
    names = [v.name for v in config.variants]
    for name in variants:
        if name not in names:
            raise ConfigError(f"--variant: {name!r} is not a variant of {config.name}"
                              f"{did_you_mean(name, names)}; variants: {', '.join(names)}")
    for seed in seeds:
        if seed not in config.seeds:
            raise ConfigError(f"--seed: {seed} is not one of {config.name}'s seeds "
                              f"{list(config.seeds)}; add it to the config's seeds first")
    return ([v for v in config.variants if not variants or v.name in variants],
            [s for s in config.seeds if not seeds or s in seeds])


def run(config: ExperimentConfig, *, command: str, progress: bool = True,
        log: Callable[[str], None] = print, plan_only: bool = False,
        variants: Sequence[str] = (), seeds: Sequence[int] = (),
        allow_dirty: bool = False) -> pathlib.Path | None:
    """Trains every variant × seed not yet finished, then writes the report.

    Leaves the process's environment as it is (``jaxconv run`` starts with
    `jaxconv.environment`'s settings; a program calling this sets its own); ``command.txt``
    records the settings in effect.

    Args:
      config: the experiment (`jaxconv.experiment.load`).
      command: the command line recorded in ``command.txt`` and the report.
      progress: show a progress bar per run.
      log: where the plan and progress lines go.
      plan_only: print the plan (with a measured step per design) and stop; nothing is written.
      variants, seeds: train only these of the config's variants and seeds (all where empty),
        e.g. to rerun one row; ``config.yaml`` and the report still cover the whole config.
      allow_dirty: train a study (a run folder that git does not ignore, see
        `provenance.committed_folder`) from a tree with uncommitted changes; refused otherwise.

    In a multi-host run (`jax.distributed.initialize` first) every process calls this with
    the same config and run folder, on storage they all see; process 0 writes the files.

    Returns:
      The path of ``report.md`` (``None`` with ``plan_only``, and on processes other than 0).
    """
    for key in ("GLIBC_TUNABLES", "XLA_FLAGS"):
        if os.environ.get(key):
            command = f"{key}={shlex.quote(os.environ[key])} {command}"
    run_dir = config.run_dir
    resolved = _resolved(config)
    _check_run_dir(config, resolved)
    chosen, seeds = rows(config, variants, seeds)
    if not plan_only:
        provenance.check_clean(run_dir, provenance.git_commit(), allow_dirty)
    tr = data.load(config.data["name"], "train", config.data.get("data_dir"))
    te = data.load(config.data["name"], "test", config.data.get("data_dir"))
    recipe = config.train

    def build(spec, seed):
        return trained.build_model(spec, tr, seed)

    plan, total = [], 0.0
    log(f"{config.name}: {len(chosen)} variants x {len(seeds)} seeds on "
        f"{tr.name} ({len(tr):,} train / {len(te):,} test images of {tr.shape}), "
        f"{recipe.epochs} epochs, batch {recipe.batch_size}, {jax.device_count()} device(s)")
    log("| variant | params | MACs | XLA FLOPs | s/step | expected s | pending seeds |")
    log("|---|---:|---:|---:|---:|---:|---:|")
    for variant in chosen:
        # a multi-host run's processes all take process 0's view: the steps are collective
        pending = [s for s, todo in zip(seeds, hosts.flags_from_process_0(
            [not (run_dir / variant.name / f"seed-{s}" / "result.json").is_file()
             for s in seeds])) if todo]
        # the costs need shapes only; a model to time the steps with serves them as well
        model = build(variant.model, pending[0]) if pending else \
            trained.abstract_model(variant.model, tr)
        cost = analysis.summary(model, tr.shape, layer_xla_flops=False)
        steps, per_step = None, 0.0
        if pending:
            steps = train.build_steps(model, tr, recipe)
            per_step = train.step_seconds(steps, model, tr, recipe)
        kept = len(tr) - data.validation_size(len(tr), recipe.validation_fraction)
        expected = per_step * (kept // recipe.batch_size) * recipe.epochs * len(pending)
        total += expected
        plan.append((variant, cost, steps, pending))
        log(f"| {variant.name} | {cost.params:,} | {cost.macs / 1e6:.2f}M | "
            f"{cost.xla_flops / 1e6:.2f}M | {per_step:.4f} | {expected:.0f} | "
            f"{len(pending)} |")
    log(f"expected training time: {total:.0f} s (compilation and evaluation not included)")
    if plan_only:
        return None
    origin = provenance.current()       # the code and machine that train, as they start
    primary = hosts.primary()           # of a multi-host run, process 0 writes every file
    if primary:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
        commands = run_dir / "command.txt"
        earlier = commands.read_text().splitlines() if commands.is_file() else []
        if command not in earlier:
            atomic_write_text(commands, "".join(line + "\n" for line in [*earlier, command]))

    for variant, cost, steps, pending in plan:
        for seed in seeds:
            folder = run_dir / variant.name / f"seed-{seed}"
            with run_lock(folder) if primary and seed in pending \
                    else contextlib.nullcontext(True) as held:
                # every process of a multi-host run takes process 0's decision
                action = _agree("earlier" if seed not in pending else "held" if not held
                                else "finished" if (folder / "result.json").is_file()
                                else "train")
                if action == "earlier":
                    log(f"{variant.name} seed {seed}: finished earlier, skipped")
                elif action == "held":
                    log(f"{variant.name} seed {seed}: another process is training it "
                        f"({folder / LOCK} is held), skipped")
                elif action == "finished":
                    log(f"{variant.name} seed {seed}: finished by another process, skipped")
                else:
                    _train_one(variant, seed, cost, steps, folder, build, tr, te, recipe,
                               command=command, origin=origin, progress=progress, log=log,
                               write=primary)
    if not primary:
        return None
    _, path = report.build(run_dir)
    return path


_ACTIONS = ("earlier", "held", "finished", "train")


def _start_segment(folder: pathlib.Path, origin: dict[str, str], write: bool) -> int:
    """Adds this process to ``folder``'s `SEGMENTS` when ``write``, with the checkpoint step it
    resumes from (0 where there is none), and returns that step. Earlier processes that left no
    checkpoint past that step (refused, failed or stopped before saving one) trained nothing
    that remains and are dropped. Every process of a multi-host run calls it: opening the
    checkpoints waits for all of them."""
    checkpoints = train.Checkpoints(folder)
    step = checkpoints.latest() or 0
    checkpoints.close()
    if not write:
        return step
    path = folder / SEGMENTS
    earlier = [s for s in read_jsonl(path) if s["from_step"] < step] if path.is_file() else []
    atomic_write_text(path, "".join(json.dumps(s) + "\n"
                                    for s in [*earlier, {"from_step": step, **origin}]))
    return step


def _agree(action: str) -> str:
    """Process 0's ``action`` (one of `_ACTIONS`), on every process of a multi-host run."""
    return _ACTIONS[hosts.from_process_0(_ACTIONS.index(action))]


def _train_one(variant, seed: int, cost, steps, folder: pathlib.Path, build, tr, te,
               recipe: train.Recipe, *, command: str, origin: dict[str, str], progress: bool,
               log: Callable[[str], None], write: bool = True) -> None:
    """Trains one variant and seed and, when ``write``, writes its ``result.json``, finished
    or diverged."""
    if write:
        atomic_write_text(folder.parent / "model.yaml",
                          yaml.safe_dump(variant.model.to_dict(), sort_keys=False))
        trained.save_normalization(folder, *train.channel_stats(tr))
    start = _start_segment(folder, origin, write)
    record = {"schema_version": RESULT_SCHEMA, "variant": variant.name, "seed": seed,
              "params": cost.params, "macs": cost.macs, "xla_flops": cost.xla_flops,
              "choices": dict(steps.choices), "split_seed": recipe.validation_seed(seed)}
    watch = cores.Watch()
    try:
        result = train.fit(build(variant.model, seed), tr, te, recipe, seed=seed, workdir=folder,
                           progress=progress, steps=steps,
                           description=f"{variant.name} seed {seed}")
    except train.TrainingDiverged as error:
        record.update(status="diverged", diverged_at={"step": error.step, "epoch": error.epoch},
                      error=str(error), history=_epochs(folder))
        log(f"{variant.name} seed {seed}: {error}; recorded as diverged, going on")
    else:
        load = watch.stop()
        record.update(status="finished", train_time_s=result.train_time_s,
                      images_per_second=result.images_per_second,
                      cores=load and {"from_step": start, "processes": jax.process_count(),
                                      **load},
                      best_epoch=result.best_epoch, history=result.history)
        log(f"{variant.name} seed {seed}: test accuracy "
            f"{100 * result.final['test_accuracy']:.2f}%")
    record.update(command=command, provenance=origin)
    if write:
        record.update(segments=read_jsonl(folder / SEGMENTS))
        atomic_write_text(folder / "result.json", json.dumps(record, indent=1) + "\n")
