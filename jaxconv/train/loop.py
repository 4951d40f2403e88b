"""`fit`: the training loop, resumable from its last checkpoint at any moment.

A run is a function of (model init, data, recipe, seed) on one machine class with one set of
versions (`jaxconv.train.options`): the data order of epoch ``e`` comes
from ``(seed, e)``, the augmentation key of step ``s`` from ``(seed, s)``, and a checkpoint holds
the train state plus the running sums of the current epoch. So a run killed anywhere and
started again with the same arguments ends, on CPU, with exactly the metrics of an uninterrupted
run (only the wall-clock fields differ). A checkpoint records the choices its steps were
built under (`jaxconv.train.options.choices`), and a resume under others is refused.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from jaxconv.blocks import init as block_init
from jaxconv.data.batching import Batches, eval_batches, split_validation, validation_size
from jaxconv.data.datasets import Dataset
from jaxconv.functional import Compilation
from jaxconv.functional.policy import CONV_POLICIES, POLICY_VERSION, native_batch_norm
from jaxconv.train import hosts
from jaxconv.train import options as O
from jaxconv.train import step as S
from jaxconv.train.checkpoint import Checkpoints
from jaxconv.train.logging import MetricsLog, Progress
from jaxconv.train.recipe import Recipe


class TrainingDiverged(RuntimeError):
    """The loss or the parameters became NaN or infinite; the last good checkpoint is kept.

    Attributes:
      step: the first step whose loss or parameters were not finite.
      epoch: the epoch it fell in (from 1).
    """

    def __init__(self, message: str, *, step: int, epoch: int):
        super().__init__(message)
        self.step, self.epoch = step, epoch


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What a run ended with.

    Attributes:
      history: one record per epoch (train, validation and test metrics, times; test metrics
        in the last record only under ``test_eval: end``).
      train_time_s: seconds spent in training steps, compilation excluded.
      images_per_second: training throughput over those seconds.
    """

    history: list[dict[str, Any]]
    train_time_s: float
    images_per_second: float
    model: nnx.Module

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1]

    @property
    def best_epoch(self) -> int:
        key = "val_accuracy" if "val_accuracy" in self.final else "test_accuracy"
        # under test_eval "end" without a validation split only the last record has a test
        return max((r for r in self.history if key in r), key=lambda r: r[key])["epoch"]


def channel_stats(ds: Dataset, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of the (whole) training set, in [0, 1] units.

    Sums run over ``chunk`` images at a time in float64, so the memory used beyond the dataset
    is a chunk's, not a float64 copy of every image (376 MB for Fashion-MNIST, 1.2 GB for
    CIFAR-10).

    Args:
      ds: the dataset; its uint8 ``(N, H, W, C)`` images are divided by 255.
      chunk: how many images each partial sum covers.

    Returns:
      ``(mean, std)``, each float32 ``(C,)``; the std is the population one (divided by the
      pixel count), raised to at least ``1e-3`` so that normalising never divides by zero.

    >>> from jaxconv.data.datasets import Dataset
    >>> images = np.array([0, 255], np.uint8).reshape(2, 1, 1, 1)
    >>> channel_stats(Dataset("synthetic", "train", images, np.zeros(2, np.int32), 4))
    (array([0.5], dtype=float32), array([0.5], dtype=float32))
    """
    channels = ds.images.shape[-1]
    total, squares, count = np.zeros(channels), np.zeros(channels), 0
    for start in range(0, len(ds.images), chunk):
        pixels = ds.images[start:start + chunk].reshape(-1, channels).astype(np.float64) / 255.0
        total += pixels.sum(0)
        squares += np.square(pixels).sum(0)
        count += len(pixels)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def evaluate(steps: S.Steps, state: S.TrainState, ds: Dataset, batch_size: int,
             mesh, prefix: str) -> dict[str, float]:
    # the batches' sums come back to the host together, once: no wait between batches
    outs = jax.device_get([steps.evaluate(state, *S.shard_batch(mesh, images, labels, weight))
                           for images, labels, weight in eval_batches(ds, batch_size)])
    totals = {key: sum(float(out[key]) for out in outs) for key in ("loss", "correct", "count")}
    return {f"{prefix}_loss": totals["loss"] / totals["count"],
            f"{prefix}_accuracy": totals["correct"] / totals["count"]}


def split(train: Dataset, recipe: Recipe, seed: int) -> tuple[Dataset, Dataset | None]:
    """The images a run with training seed ``seed`` trains on and validates on: the hold-out
    is chosen by ``recipe.split_seed``, so every seed of a study shares it (by ``seed`` itself
    when ``split_seed`` is ``None``)."""
    return split_validation(train, recipe.validation_fraction, recipe.validation_seed(seed))


def check_policy(recipe: Recipe, known: Sequence[int] = tuple(CONV_POLICIES)) -> int:
    """The formulation-policy version a run of ``recipe`` picks by: the one it pins, which
    must be one this code holds, or the current one.

    Raises:
      ValueError: the recipe pins a version this code does not hold (a newer jaxconv's).
    """
    if recipe.policy_version is None:
        return POLICY_VERSION
    if recipe.policy_version not in known:
        raise ValueError(
            f"train.policy_version: the config pins formulation policy version "
            f"{recipe.policy_version}, which this jaxconv does not hold (it has "
            f"{', '.join(map(str, known))}; jaxconv.functional.policy.CONV_POLICIES): run it "
            "with the jaxconv that wrote the config, or pin one of these")
    return recipe.policy_version


#: How many training images (the first of the training split) `prepare` whitens the stem on.
WHITEN_IMAGES = 5000


def prepare(model: nnx.Module, train: Dataset, recipe: Recipe, seed: int) -> nnx.Module:
    """The model a run with training seed ``seed`` starts from: ``model`` itself, or a copy
    with ``recipe.dirac_init``'s identity filters in its blocks and, with ``recipe.stem_init ==
    "whiten"``, its stem whitened on the first `WHITEN_IMAGES` images of its training split,
    normalised as the steps normalise them."""
    if recipe.stem_init == "model" and not recipe.dirac_init:
        return model
    model = nnx.clone(model)
    if recipe.dirac_init:
        block_init.dirac_blocks(model)
    if recipe.stem_init == "whiten":
        mean, std = channel_stats(train)
        kept, _ = split(train, recipe, seed)
        images = (kept.images[:WHITEN_IMAGES].astype(np.float32) / 255 - mean) / std
        block_init.whiten_stem(model, images)
    return model


def build_steps(model: nnx.Module, train: Dataset, recipe: Recipe) -> S.Steps:
    """The jitted steps `fit` would build; pass them to several `fit` calls of the same design,
    dataset and recipe (any seed) to compile once.

    Checks the recipe against the data and the devices, computes the training set's channel
    statistics (`channel_stats`, over all of ``train``, validation hold-out included), resolves
    the compile options (process 0's choice in a multi-host run, whose processes must agree on
    what decides the formulations: `jaxconv.train.hosts.check_same_formulation_class`) and the
    formulation-policy version, and builds the steps with `jaxconv.train.step.build`. The
    steps are ``jax.jit`` functions, compiled on their first call.

    Args:
      model: the NNX classifier; the steps are built from a copy, so it is not modified.
      train: the training dataset (before the validation hold-out is split off).
      recipe: the hyper-parameters.

    Returns:
      The `jaxconv.train.step.Steps`, with ``choices`` holding the option set, its compiler
      options and the policy version they were built under.

    Raises:
      ValueError: ``recipe.batch_size`` or ``recipe.eval_batch_size`` does not divide over
        the devices; ``recipe.batch_size`` exceeds the training images left after the hold-out;
        ``recipe.cutout_size`` exceeds the images' smaller side while cutout is on;
        ``recipe.policy_version`` is one this code does not hold; or
        ``recipe.compile_options`` names no known option set.
    """
    S.check_divisible(recipe.batch_size)
    S.check_divisible(recipe.eval_batch_size, "eval_batch_size")
    kept = len(train) - validation_size(len(train), recipe.validation_fraction)
    if recipe.batch_size > kept:
        raise ValueError(f"train.batch_size: {recipe.batch_size} is larger than the {kept} "
                         f"training images of {train.name}")
    version = check_policy(recipe)
    side = min(train.images.shape[1:3])
    if recipe.cutout_rate and recipe.cutout_size > side:
        raise ValueError(f"train.cutout_size: {recipe.cutout_size} is larger than the "
                         f"{train.images.shape[1]}x{train.images.shape[2]} images of "
                         f"{train.name}")
    mean, std = channel_stats(train)
    hosts.check_same_formulation_class()      # before any process compiles
    chosen = {**O.agreed(O.choices(recipe.compile_options)), "policy_version": version,
              "batch_norm": "native channel sums" if native_batch_norm(
                  Compilation(policy_version=version), recipe.compute_dtype) else "lax"}
    steps = S.build(model, recipe, steps_per_epoch=kept // recipe.batch_size,
                    num_classes=train.num_classes, mean=mean, std=std,
                    compiler_options=chosen["compiler_options"], option_set=chosen["option_set"])
    return dataclasses.replace(steps, choices=chosen)


def _timing_call(train: Dataset, recipe: Recipe) -> tuple:
    """The inputs of a full call as `fit` gives them (its training split has ``kept``
    images), so a timed program is the one `fit` then runs, compiled once."""
    mesh = S.mesh()
    per_call = steps_per_call(recipe)
    kept = len(train) - validation_size(len(train), recipe.validation_fraction)
    order = np.arange(per_call * recipe.batch_size) % kept
    return (*S.replicate(mesh, (train.images[:kept], train.labels[:kept])),
            *S.replicate(mesh, call_inputs(order, 0, per_call, per_call, per_call,
                                           recipe.batch_size)))


def step_seconds(steps: S.Steps, model: nnx.Module, train: Dataset, recipe: Recipe) -> float:
    """Seconds per training step of ``steps`` as `fit` runs them: one timed call after a
    warm-up call (which compiles the program `fit` will run). For the plan only: no timing
    decides anything a run computes.

    The timed call runs as many steps as `fit` runs per compiled call (`steps_per_call`), on
    batches of ``recipe.batch_size`` of ``train``'s first images, from the state
    ``steps.init(model, 0)``. Collective in a multi-host run: every process must call it, and
    all return process 0's figure.

    Args:
      steps: the steps from `build_steps` for this model, data and recipe.
      model: the NNX model the state is initialised from.
      train: the training dataset (before the validation hold-out is split off).
      recipe: the hyper-parameters.

    Returns:
      The wall-clock seconds of the timed call divided by its number of steps (resolved to
      the microsecond per call).
    """
    per_call = steps_per_call(recipe)
    # the timed call is collective: every process of a multi-host run times, and all take
    # process 0's figure
    state = S.replicate(S.mesh(), steps.init(model, 0))
    ms = O.time_step(steps.train_many, state, _timing_call(train, recipe), repeats=1)
    return hosts.from_process_0(round(ms * 1e3)) / 1e6 / per_call


def _recorded_choices(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The choices a checkpoint was saved under: its record, or the option set's name alone
    in checkpoints from before records (``None`` when it holds neither)."""
    if "choices" in meta:
        return dict(meta["choices"])
    return {"option_set": meta["compile_options"]} if "compile_options" in meta else None


#: Steps per compiled call unless `Recipe.steps_per_call` says otherwise. Each call allocates
#: its temporaries afresh (a page fault per new page unless malloc keeps freed memory, see
#: `jaxconv.environment`), so even slow steps gain from several per call: the ResNet bench net
#: on a 2-core AVX2 CPU, default environment, trained at 168 img/s one step per call and 242
#: img/s four steps per call (experiments/results/fit_cpu_avx2.md). A constant, not a
#: function of a timing, so a run's numerics never depend on the machine's load.
STEPS_PER_CALL = 8


def steps_per_call(recipe: Recipe) -> int:
    """``recipe.steps_per_call``, or the constant `STEPS_PER_CALL` when it is 0."""
    return recipe.steps_per_call or STEPS_PER_CALL


def call_length(step: int, per_call: int, *, epoch_end: int, checkpoint_every: int) -> int:
    """How many steps the call starting at ``step`` runs: ``per_call``, or fewer where the
    epoch ends or a checkpoint is due first.

    A function of the step alone, so an interrupted run resumed from a checkpoint cuts its
    steps into the same calls as an uninterrupted one (one compiled program runs every call,
    its unused rows masked): its metrics stay exactly equal.
    """
    limit = epoch_end - step
    if checkpoint_every:
        limit = min(limit, checkpoint_every - step % checkpoint_every)
    return min(per_call, limit)


def call_inputs(order: np.ndarray, step: int, count: int, per_call: int, per_epoch: int,
                batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(per_call, batch)`` rows of ``order`` for steps ``step .. step + count - 1`` of
    their epoch (unused rows repeat the first) and the ``(per_call,)`` mask of used rows."""
    batches = order[:per_epoch * batch_size].reshape(per_epoch, batch_size)
    rows = step % per_epoch + np.minimum(np.arange(per_call), count - 1)
    return batches[rows].astype(np.int32), np.arange(per_call) < count


def fit(model: nnx.Module, train: Dataset, test: Dataset, recipe: Recipe, *, seed: int,
        workdir: str | pathlib.Path, progress: bool = True, description: str = "train",
        on_step: Callable[[int], None] | None = None,
        steps: S.Steps | None = None, checkpoint_seconds: float = 30.0) -> FitResult:
    """Trains ``model`` (a copy; the argument is not modified) and evaluates it every epoch.

    Args:
      model: an NNX classifier mapping ``(N, H, W, C)`` float images to logits.
      train, test: datasets; ``recipe.validation_fraction`` of ``train`` is held out, chosen
        by ``recipe.split_seed`` (the same for every ``seed``) or, when that is ``None``, by
        ``seed``.
      recipe: the hyper-parameters.
      seed: data order, augmentation and (through the caller's init) the model.
      workdir: checkpoints, ``metrics.jsonl`` and TensorBoard files; an existing checkpoint
        there is resumed.
      on_step: called with the step number of each step, in order, after the call that ran
        it (a hook for tests and tools).
      steps: prebuilt steps from `build_steps` for this design, data and recipe.
      checkpoint_seconds: an epoch's end is checkpointed when at least this many seconds
        have passed since the last checkpoint (or the start), and the last epoch's always;
        0 checkpoints every epoch. A checkpoint costs about 0.4 s, which short epochs (the
        quickstart's take 0.1 s) would otherwise spend mostly saving; where a run resumes
        does not change its metrics. Every ``recipe.checkpoint_every`` steps is always saved.

    Returns:
      A `FitResult` with the trained model.

    Raises:
      TrainingDiverged: the loss became NaN or infinite.
      ValueError: the batch size does not divide over the devices, or exceeds the data; or
        ``workdir``'s checkpoint was saved under other choices (compile options, XLA flags,
        autotuning) than ``steps`` were built under.
    """
    workdir = pathlib.Path(workdir)
    steps = steps or build_steps(model, train, recipe)
    train_ds, val_ds = split(train, recipe, seed)
    model = prepare(model, train, recipe, seed)
    batches = Batches(train_ds, recipe.batch_size, seed)
    per_epoch = batches.steps_per_epoch
    mesh = S.mesh()
    state = S.replicate(mesh, steps.init(model, seed))
    checkpoints = Checkpoints(workdir)
    meta: dict[str, Any] = {"history": [], "train_time_s": 0.0, "images": 0,
                            "sums": [0.0, 0.0, 0]}
    # the run folder is shared by every process; all resume from what process 0 sees
    latest = hosts.from_process_0(-1 if checkpoints.latest() is None else checkpoints.latest())
    if latest >= 0:
        state, meta = checkpoints.restore(state, latest)
        try:    # only the choices it started under give the numbers of an uninterrupted run
            O.check_resume(_recorded_choices(meta), steps.choices, str(workdir))
        except ValueError:
            checkpoints.close()
            raise
    start = int(state.step)
    log = MetricsLog(workdir, resume_step=start if start else None, enabled=hosts.primary())
    bar = Progress(recipe.epochs * per_epoch, start, enabled=progress and hosts.primary(),
                   description=description)
    lr = recipe.schedule_fn(per_epoch)
    history, sums = list(meta["history"]), list(meta["sums"])
    train_time, images_seen = float(meta["train_time_s"]), int(meta["images"])

    saved = time.perf_counter()

    def save():
        nonlocal saved
        log.sync()          # the events a checkpoint covers are on disk before it exists
        checkpoints.save(state, {"history": history, "train_time_s": train_time,
                                 "images": images_seen, "sums": sums,
                                 "choices": dict(steps.choices)})
        saved = time.perf_counter()

    per_call = steps_per_call(recipe)
    images, labels = S.replicate(mesh, (train_ds.images, train_ds.labels))

    try:
        first = True
        for epoch in range(start // per_epoch, recipe.epochs):
            order = batches.order(epoch)
            while int(state.step) < (epoch + 1) * per_epoch:
                step = int(state.step)
                count = call_length(step, per_call, epoch_end=(epoch + 1) * per_epoch,
                                    checkpoint_every=recipe.checkpoint_every)
                index, active = call_inputs(order, step, count, per_call, per_epoch,
                                            recipe.batch_size)
                tick = time.perf_counter()
                state, metrics = steps.train_many(state, images, labels,
                                                  *S.replicate(mesh, (index, active)))
                losses, accuracies, finite = (np.asarray(metrics[k]) for k in
                                              ("loss", "accuracy", "finite"))
                if first:
                    first = False        # the first call after a (re)start compiles
                else:
                    train_time += time.perf_counter() - tick
                    images_seen += count * recipe.batch_size
                for offset in range(count):
                    loss, accuracy = float(losses[offset]), float(accuracies[offset])
                    at = step + offset + 1
                    if not (math.isfinite(loss) and finite[offset]):
                        last = checkpoints.latest()
                        where = (f"the last good checkpoint is step {last} in "
                                 f"{checkpoints.directory}" if last is not None
                                 else "no checkpoint had been written yet")
                        raise TrainingDiverged(
                            f"training diverged at step {at} (epoch {epoch + 1}): loss {loss}, "
                            f"parameters {'finite' if finite[offset] else 'not finite'}; "
                            f"training stopped and {where}", step=at, epoch=epoch + 1)
                    sums = [sums[0] + loss, sums[1] + accuracy, sums[2] + 1]
                    bar.step({"loss": loss, "acc": accuracy})
                    if at % recipe.log_every == 0:
                        log.write({"kind": "train", "step": at, "epoch": epoch + 1,
                                   "loss": loss, "accuracy": accuracy,
                                   "lr": float(lr(at - 1))})
                    if on_step is not None:
                        on_step(at)
                at = step + count
                if recipe.checkpoint_every and at % recipe.checkpoint_every == 0 \
                        and at % per_epoch:
                    save()
            record = {"kind": "epoch", "step": int(state.step), "epoch": epoch + 1,
                      "train_loss": sums[0] / sums[2], "train_accuracy": sums[1] / sums[2]}
            if val_ds is not None:
                record.update(evaluate(steps, state, val_ds, recipe.eval_batch_size, mesh,
                                       "val"))
            if recipe.test_eval == "epoch" or epoch + 1 == recipe.epochs:
                record.update(evaluate(steps, state, test, recipe.eval_batch_size, mesh,
                                       "test"))
            record.update({"train_time_s": train_time,
                           "images_per_second": images_seen / train_time if train_time else 0.0})
            history.append(record)
            sums = [0.0, 0.0, 0]
            log.write(record)
            bar.epoch(record)
            # saving is collective: every process of a multi-host run takes process 0's clock
            due = recipe.checkpoint_every and int(state.step) % recipe.checkpoint_every == 0
            if hosts.from_process_0(epoch + 1 == recipe.epochs or due
                                    or time.perf_counter() - saved >= checkpoint_seconds):
                save()
    finally:
        bar.close()
        log.close()
        checkpoints.close()
    jax.block_until_ready(state)
    return FitResult(history, train_time, images_seen / train_time if train_time else 0.0,
                     steps.merge(state))
