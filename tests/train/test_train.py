"""The training engine: smoke run, determinism, resume after a crash and after kill -9,
divergence, logging, and the 4-device run."""

import json
import math
import os
import pathlib
import re
import signal
import struct
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv import data, train
from jaxconv.train import step as step_lib
from tests.train.runner import run, small_model

ROOT = pathlib.Path(__file__).parents[2]
TIMING = ("train_time_s", "images_per_second")


class Crash(Exception):
    """Raised by `crash_at` inside a run, as a crash would stop it."""


def crash_at(at):
    """An ``on_step`` hook that crashes the run at step ``at``."""
    def hook(step):
        if step == at:
            raise Crash
    return hook


def without_timing(history):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in history]


def subprocess_run(workdir, *args, devices=1, **popen):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               JAX_PLATFORMS="cpu")
    return subprocess.Popen([sys.executable, "-m", "tests.train.runner", str(workdir), *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, **popen)


def test_one_epoch_smoke_run_writes_metrics_and_checkpoints(tmp_path):
    result = run(tmp_path, epochs=1)
    assert [r["epoch"] for r in result.history] == [1]
    assert 0 <= result.final["test_accuracy"] <= 1 and result.images_per_second > 0
    records = train.read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 9))
    assert train.Checkpoints(tmp_path).latest() == 8
    logits = result.model(jnp.zeros((2, 12, 12, 1)))
    assert logits.shape == (2, 4)


def test_epoch_checkpoints_wait_for_checkpoint_seconds_but_the_last_epoch_is_saved(tmp_path):
    # two epochs of 8 steps; the manager keeps the last two checkpoints
    run(tmp_path / "timed", checkpoint_every=0, checkpoint_seconds=math.inf)
    assert list(train.Checkpoints(tmp_path / "timed").manager.all_steps()) == [16]
    run(tmp_path / "every", checkpoint_every=0, checkpoint_seconds=0)
    assert list(train.Checkpoints(tmp_path / "every").manager.all_steps()) == [8, 16]


def test_a_resume_from_an_epoch_checkpoint_skips_nothing_and_repeats_nothing(tmp_path):
    # epoch 1's end is saved, epoch 2 runs, then the run dies before its last save
    reference = run(tmp_path / "reference", checkpoint_every=0)

    with pytest.raises(Crash):
        run(tmp_path / "crashed", checkpoint_every=0, checkpoint_seconds=0,
            on_step=crash_at(15))
    assert train.Checkpoints(tmp_path / "crashed").latest() == 8
    resumed = run(tmp_path / "crashed", checkpoint_every=0, checkpoint_seconds=math.inf)
    assert without_timing(resumed.history) == without_timing(reference.history)
    assert without_timing(train.read_jsonl(tmp_path / "crashed" / "metrics.jsonl")) == \
        without_timing(train.read_jsonl(tmp_path / "reference" / "metrics.jsonl"))


def test_where_checkpoints_cut_the_calls_does_not_change_training(tmp_path):
    # 8 steps an epoch: one call an epoch without step checkpoints, calls of 3, 3, 2, 1, ...
    # with a checkpoint every 3 steps; the same compiled call runs both, its rows masked
    whole = run(tmp_path / "whole", checkpoint_every=0)
    cut = run(tmp_path / "cut", checkpoint_every=3)
    assert without_timing(train.read_jsonl(tmp_path / "cut" / "metrics.jsonl")) == \
        without_timing(train.read_jsonl(tmp_path / "whole" / "metrics.jsonl"))
    assert without_timing(cut.history) == without_timing(whole.history)
    # every variable, BatchNorm statistics included
    same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)),
                        nnx.state(cut.model), nnx.state(whole.model))
    assert all(jax.tree.leaves(same))


def test_synthetic_task_is_learned(tmp_path):
    result = run(tmp_path, epochs=6, log_every=100, checkpoint_every=0)
    assert result.final["test_accuracy"] >= 0.9


def test_fit_leaves_the_callers_model_usable(tmp_path):
    tr, te = data.load("synthetic", "train"), data.load("synthetic", "test")
    model = small_model()
    before = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    train.fit(model, tr, te, train.Recipe(epochs=1, batch_size=64, eval_batch_size=64), seed=0,
              workdir=tmp_path, progress=False)
    after = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, before, after)))


def test_same_seed_same_run(tmp_path):
    a = run(tmp_path / "a", epochs=1)
    b = run(tmp_path / "b", epochs=1)
    assert without_timing(a.history) == without_timing(b.history)


def test_resume_after_a_crash_gives_identical_metrics(tmp_path):
    reference = run(tmp_path / "reference")

    tr, te = data.load("synthetic", "train"), data.load("synthetic", "test")
    model = small_model()
    recipe = train.Recipe(epochs=2, batch_size=32, learning_rate=0.05, log_every=1,
                          checkpoint_every=3, eval_batch_size=32, crop_padding=1, flip=True,
                          compile_options="default")   # as `run` resumes it
    with pytest.raises(Crash):
        train.fit(model, tr, te, recipe, seed=0, workdir=tmp_path / "crashed", progress=False,
                  on_step=crash_at(11))
    assert train.Checkpoints(tmp_path / "crashed").latest() == 9
    resumed = run(tmp_path / "crashed")
    assert without_timing(resumed.history) == without_timing(reference.history)
    assert without_timing(train.read_jsonl(tmp_path / "crashed" / "metrics.jsonl")) == \
        without_timing(train.read_jsonl(tmp_path / "reference" / "metrics.jsonl"))
    assert _tensorboard_shows(tmp_path / "crashed" / "tensorboard") == \
        _tensorboard_shows(tmp_path / "reference" / "tensorboard")
    chex_equal = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)),
                              nnx.state(resumed.model, nnx.Param),
                              nnx.state(reference.model, nnx.Param))
    assert all(jax.tree.leaves(chex_equal))


def test_several_steps_per_call_resume_exactly_and_log_every_step(tmp_path):
    # 8 steps an epoch, 3 a call, a checkpoint every 4 steps: calls 0-3, 3-4, 4-7, 7-8, ...
    reference = run(tmp_path / "reference", checkpoint_every=4, steps_per_call=3)

    with pytest.raises(Crash):
        run(tmp_path / "crashed", checkpoint_every=4, steps_per_call=3,
            on_step=crash_at(11))
    assert train.Checkpoints(tmp_path / "crashed").latest() == 8
    resumed = run(tmp_path / "crashed", checkpoint_every=4, steps_per_call=3)
    assert without_timing(resumed.history) == without_timing(reference.history)
    records = train.read_jsonl(tmp_path / "crashed" / "metrics.jsonl")
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 17))
    assert without_timing(records) == \
        without_timing(train.read_jsonl(tmp_path / "reference" / "metrics.jsonl"))


@pytest.mark.parametrize(("step", "expected"), [(0, 4), (2, 4), (4, 2), (6, 2), (7, 1)])
def test_calls_stop_at_checkpoints_and_epoch_ends(step, expected):
    # epoch of 8 steps, a checkpoint every 6: a call never runs past step 6 or step 8
    assert train.loop.call_length(step, 4, epoch_end=8, checkpoint_every=6) == expected


def test_a_call_runs_its_steps_in_order_and_masks_the_rest():
    order = np.arange(6 * 2)[::-1]           # 6 steps of batch 2 in this epoch
    index, active = train.loop.call_inputs(order, step=10, count=2, per_call=3, per_epoch=6,
                                           batch_size=2)
    np.testing.assert_array_equal(index, [[3, 2], [1, 0], [1, 0]])
    np.testing.assert_array_equal(active, [True, True, False])


def test_kill_9_then_rerun_gives_identical_metrics(tmp_path):
    reference = run(tmp_path / "reference")
    workdir = tmp_path / "killed"
    process = subprocess_run(workdir, "--sleep", "0.3")
    deadline = time.time() + 120
    while train.Checkpoints(workdir).latest() is None and time.time() < deadline:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_at = train.Checkpoints(workdir).latest()
    assert killed_at is not None and killed_at < 16, "the run finished before it was killed"
    resumed = run(workdir)
    assert without_timing(resumed.history) == without_timing(reference.history)
    # a process killed outright flushes nothing: TensorBoard still shows every step once
    assert _tensorboard_shows(workdir / "tensorboard") == \
        _tensorboard_shows(tmp_path / "reference" / "tensorboard")


def test_a_rerun_after_a_crash_before_any_checkpoint_shows_each_step_once(tmp_path):
    reference = run(tmp_path / "reference", epochs=1)
    with pytest.raises(Crash):
        run(tmp_path / "crashed", epochs=1, on_step=crash_at(2))
    assert train.Checkpoints(tmp_path / "crashed").latest() is None
    rerun = run(tmp_path / "crashed", epochs=1)
    assert without_timing(rerun.history) == without_timing(reference.history)
    assert _tensorboard_shows(tmp_path / "crashed" / "tensorboard") == \
        _tensorboard_shows(tmp_path / "reference" / "tensorboard")


def test_divergence_stops_with_a_clear_error_and_keeps_the_checkpoint(tmp_path):
    tr, te = data.load("synthetic", "train"), data.load("synthetic", "test")
    model = small_model()
    # Linear warm-up from 0 to an enormous rate: a few steps in, the parameters overflow.
    recipe = train.Recipe(epochs=1, batch_size=32, learning_rate=3e38, warmup_epochs=1.0,
                          schedule="constant", weight_decay=0.0, checkpoint_every=1,
                          eval_batch_size=32)
    with pytest.raises(train.TrainingDiverged, match=r"training diverged at step (\d+) \(epoch "
                                                     r"1\):.*parameters not finite; training "
                                                     r"stopped and the last good checkpoint is "
                                                     r"step (\d+) in ") as info:
        train.fit(model, tr, te, recipe, seed=0, workdir=tmp_path, progress=False)
    bad, good = map(int, re.search(r"step (\d+) .*step (\d+)", str(info.value)).groups())
    assert (info.value.step, info.value.epoch) == (bad, 1)
    checkpoints = train.Checkpoints(tmp_path)
    assert checkpoints.latest() == good == bad - 1 > 0
    steps = step_lib.build(model, recipe, steps_per_epoch=8, num_classes=4, mean=np.zeros(1),
                           std=np.ones(1))
    restored, _ = checkpoints.restore(steps.init(model, 0))
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(restored.params))


def test_divergence_inside_a_call_names_the_first_bad_step(tmp_path):
    tr, te = data.load("synthetic", "train"), data.load("synthetic", "test")
    model = small_model()
    bad = []
    for per_call in (1, 8):
        recipe = train.Recipe(epochs=1, batch_size=32, learning_rate=3e38, warmup_epochs=1.0,
                              schedule="constant", weight_decay=0.0, eval_batch_size=32,
                              steps_per_call=per_call, compile_options="default")
        with pytest.raises(train.TrainingDiverged) as info:
            train.fit(model, tr, te, recipe, seed=0, workdir=tmp_path / str(per_call),
                      progress=False)
        bad.append(int(re.search(r"diverged at step (\d+)", str(info.value)).group(1)))
    assert bad[0] == bad[1] > 1


def test_weight_decay_skips_biases_and_norm_scales():
    recipe = train.Recipe(weight_decay=0.5, learning_rate=1.0, momentum=0.0, schedule="constant")
    params = {"kernel": jnp.ones((3, 3, 2, 2)), "bias": jnp.ones((2,)), "scale": jnp.ones((2,))}
    tx = recipe.optimizer_fn(10)
    updates, _ = tx.update(jax.tree.map(jnp.zeros_like, params), tx.init(params), params)
    assert float(updates["kernel"].ravel()[0]) == pytest.approx(-0.5)
    assert float(jnp.abs(updates["bias"]).max()) == 0
    assert float(jnp.abs(updates["scale"]).max()) == 0


def test_recipe_errors_name_the_key():
    with pytest.raises(ValueError, match=r"train: unknown key 'lr'.*valid keys: epochs"):
        train.Recipe.from_dict({"lr": 0.1})
    with pytest.raises(ValueError, match=r"train.optimizer: 'adam' is not one of sgd, adamw"):
        train.Recipe(optimizer="adam")
    with pytest.raises(ValueError, match=r"train.batch_size: 0 must be a positive int"):
        train.Recipe(batch_size=0)


def _events(folder):
    """Events of every TensorBoard event file in ``folder``, file by file in the order they
    were written, parsed from the TFRecord framing directly. As TensorBoard does, an empty file
    and a record cut off at the end of a file (a process killed while writing) are skipped."""
    from tensorboardX.proto import event_pb2

    files = []
    for path in pathlib.Path(folder).glob("events.out.tfevents.*"):
        raw, offset, events = path.read_bytes(), 0, []
        while offset + 12 <= len(raw):
            (length,) = struct.unpack("<Q", raw[offset:offset + 8])
            if offset + 12 + length + 4 > len(raw):
                break
            events.append(event_pb2.Event.FromString(raw[offset + 12:offset + 12 + length]))
            offset += 12 + length + 4
        if events:
            files.append(events)
    files.sort(key=lambda events: events[0].wall_time)
    return [event for events in files for event in events]


def _tensorboard_shows(folder):
    """(tag, step) of every scalar TensorBoard displays: a session start at step S hides every
    earlier event at step S or later (TensorBoard's rule for a restarted writer)."""
    shown = []
    for event in _events(folder):
        if event.HasField("session_log") and event.session_log.status == event.session_log.START:
            shown = [(tag, step) for tag, step in shown if step < event.step]
        shown += [(v.tag, event.step) for v in event.summary.value
                  if v.tag.split("/")[-1] not in TIMING]
    return sorted(shown)


def test_tensorboard_events_are_readable(tmp_path):
    run(tmp_path, epochs=1)
    tags = {tag for tag, _ in _tensorboard_shows(tmp_path / "tensorboard")}
    assert {"train/loss", "train/accuracy", "epoch/test_accuracy"} <= tags


def test_four_devices_match_one_device(tmp_path):
    one = run(tmp_path / "one")
    process = subprocess_run(tmp_path / "four", devices=4)
    out, _ = process.communicate(timeout=300)
    four = json.loads(out.strip().splitlines()[-1])
    losses_one = [r["loss"] for r in train.read_jsonl(tmp_path / "one" / "metrics.jsonl")
                  if r["kind"] == "train"]
    np.testing.assert_allclose(four["losses"], losses_one, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(four["history"][-1]["test_accuracy"],
                               one.final["test_accuracy"], atol=1 / 64)
    uneven = subprocess_run(tmp_path / "uneven", "--batch-size", "30", devices=4)
    out, _ = uneven.communicate(timeout=300)
    assert "train.batch_size: 30 does not divide evenly over the 4 devices" in out


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_schedules_warm_up_then_decay_as_named(schedule):
    recipe = train.Recipe(epochs=2, learning_rate=0.4, warmup_epochs=0.5, schedule=schedule)
    lr = recipe.schedule_fn(10)    # 20 steps, 5 of warm-up
    assert float(lr(0)) == 0.0 and float(lr(5)) == pytest.approx(0.4)
    assert float(lr(2)) == pytest.approx(0.16)
    quarter = {"cosine": 0.4 * (1 + np.cos(np.pi / 4)) / 2, "linear": 0.3,
               "constant": 0.4}[schedule]
    assert float(lr(5 + 15 / 4)) == pytest.approx(quarter, rel=1e-5)
    assert float(lr(20)) == pytest.approx(0.4 if schedule == "constant" else 0.0)
