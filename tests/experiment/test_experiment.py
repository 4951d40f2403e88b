"""Experiments from configs: end-to-end `jaxconv run`, reruns, reports and config errors."""

import csv
import itertools
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import yaml

from jaxconv import experiment
from jaxconv.cli import main
from jaxconv.experiment import cores, examples

TINY = {
    "name": "tiny",
    "data": {"name": "synthetic"},
    "train": {"epochs": 1, "batch_size": 64, "eval_batch_size": 64, "learning_rate": 0.05},
    "model": {"layout": {"width": 8, "depth": 1, "stem_strides": 1}},
    "variants": [{"name": "basic", "model": {"layout": {"block": "basic"}}},
                 {"name": "fire", "model": {"layout": {"block": "fire"}}}],
    "seeds": [0],
}


def write_config(tmp_path, config=None):
    config = dict(config or TINY, output_dir=str(tmp_path / "runs"))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_run_trains_every_variant_and_writes_the_report(tmp_path, capsys):
    path = write_config(tmp_path)
    assert main(["run", str(path), "--quiet", "--set", "seeds=[0, 1]"]) == 0
    out = capsys.readouterr().out
    assert "| variant | params | MACs | XLA FLOPs | s/step" in out
    assert "\n- clocks: " in out.split("| variant | params | MACs | XLA FLOPs | train time")[1]
    run_dir = tmp_path / "runs" / "tiny"
    for name in ("report.md", "results.csv", "config.yaml", "command.txt",
                 *experiment.report.PLOTS):
        assert (run_dir / name).is_file(), name
    for plot in experiment.report.PLOTS:
        assert (run_dir / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the command that reproduces the run, after any settings in effect
    command = (run_dir / "command.txt").read_text()
    assert command.rstrip().endswith(f"jaxconv run {path} --quiet --set 'seeds=[0, 1]'")
    with (run_dir / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["variant"] for r in rows] == ["basic", "fire"]
    assert set(experiment.report.COLUMNS) <= set(rows[0])
    assert all(r["seeds"] == "2" and 0 <= float(r["test_acc_mean"]) <= 1 for r in rows)
    report = (run_dir / "report.md").read_text()
    assert "jaxconv run" in report and "seeds=[0, 1]" in report and "- commit: " in report
    result = json.loads((run_dir / "basic" / "seed-1" / "result.json").read_text())
    assert result["status"] == "finished" and result["command"] == command.strip()
    assert {"commit", "versions", "cpu", "backend", "date"} <= set(result["provenance"])
    assert "| basic |" in report and "## Resolved config" in report
    # the process that trained it watched its cores from step 0 (Linux; None elsewhere)
    if cores.Watch().stop() is not None:
        load = result["cores"]
        assert load["from_step"] == 0 and load["own_cpu_s"] > 0 and load["wall_s"] > 0
        assert "- clocks: " in report

    # A rerun skips finished runs and gives the same results.
    before = (run_dir / "results.csv").read_text()
    assert main(["run", str(path), "--quiet", "--set", "seeds=[0, 1]"]) == 0
    out = capsys.readouterr().out
    assert out.count("finished earlier, skipped") == 4
    after = (run_dir / "results.csv").read_text()
    assert before.split("\n")[1].split(",")[6] == after.split("\n")[1].split(",")[6]

    # `jaxconv report` rebuilds from the folder.
    (run_dir / "report.md").unlink()
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.md").is_file()


def test_a_run_interrupted_mid_seed_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    config_dict = dict(TINY, variants=TINY["variants"][:1],
                       train=dict(TINY["train"], epochs=2, checkpoint_every=2))
    for name in ("straight", "interrupted"):
        (tmp_path / name).mkdir()
    straight = experiment.load(write_config(tmp_path / "straight", config_dict))
    experiment.run(straight, command="test", progress=False, log=lambda s: None)
    expected = json.loads((straight.run_dir / "basic" / "seed-0" / "result.json").read_text())

    config = experiment.load(write_config(tmp_path / "interrupted", config_dict))
    fit = experiment.runner.train.fit

    def interrupted_fit(*args, **kwargs):
        def stop(step):
            if step == 7:
                raise KeyboardInterrupt
        return fit(*args, **kwargs, on_step=stop)

    monkeypatch.setattr(experiment.runner.train, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        experiment.run(config, command="test", progress=False, log=lambda s: None)
    folder = config.run_dir / "basic" / "seed-0"
    assert not (folder / "result.json").exists()
    assert experiment.runner.train.Checkpoints(folder).latest() == 6     # mid-epoch 2 of 2
    steps = []
    monkeypatch.setattr(experiment.runner.train, "fit",
                        lambda *args, **kwargs: fit(*args, **kwargs, on_step=steps.append))
    experiment.run(config, command="test", progress=False, log=lambda s: None)
    assert steps == [7, 8], "the rerun did not continue from the checkpoint"
    resumed = json.loads((folder / "result.json").read_text())
    keys = ("train_loss", "train_accuracy", "test_loss", "test_accuracy")
    assert [[h[k] for k in keys] for h in resumed["history"]] == \
        [[h[k] for k in keys] for h in expected["history"]]
    # both processes are on record, each with the step it started from
    assert [s["from_step"] for s in resumed["segments"]] == [0, 6]
    if resumed["cores"] is not None:      # its clock covers steps 7 on: no speed figure,
        assert resumed["cores"]["from_step"] == 6     # however quiet the cores were
        quiet = {**resumed, "cores": {**resumed["cores"], "quiet": True}}
        assert experiment.report.clock(quiet) == "resumed"
    assert resumed["segments"][-1] == {"from_step": 6, **resumed["provenance"]}
    assert [s["from_step"] for s in expected["segments"]] == [0]


def _run_two_processes(path, tmp_path, timeout, process_env=None):
    """``jaxconv run path`` as a two-process multi-host run on this machine (one CPU device and
    HOME each, so each keeps its own caches and the processes must agree on what to time), with
    ``process_env[i]`` added to process ``i``'s environment; (exit codes, outputs)."""
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}   # one device each
    env["JAX_PLATFORMS"] = "cpu"
    logs = [tmp_path / f"process-{i}.log" for i in range(2)]
    processes = []
    try:
        for i, log in enumerate(logs):
            with log.open("w") as out:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "jaxconv", "run", str(path), "--quiet",
                     "--coordinator", f"localhost:{port}", "--processes", "2",
                     "--process-id", str(i)], stdout=out, stderr=subprocess.STDOUT,
                    env=dict(env, HOME=str(tmp_path / f"home-{i}"),
                             **(process_env or {}).get(i, {}))))
        deadline = time.monotonic() + timeout
        codes = [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in processes]
    finally:
        for p in processes:
            p.kill()
    return codes, [log.read_text() for log in logs]


def test_a_two_process_run_trains_as_one_process_and_only_process_0_writes(tmp_path):
    config = dict(TINY, variants=TINY["variants"][:1], train=dict(TINY["train"], epochs=2))
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    path = write_config(tmp_path / "two", config)
    codes, outs = _run_two_processes(path, tmp_path, timeout=300)
    assert codes == [0, 0], outs
    assert "2 device(s)" in outs[1] and "report: " in outs[0] and "report: " not in outs[1]

    one = experiment.load(write_config(tmp_path / "one", config))
    experiment.run(one, command="test", progress=False, log=lambda s: None)
    folders = {name: tmp_path / name / "runs" / "tiny" / "basic" / "seed-0"
               for name in ("one", "two")}
    results = {name: json.loads((f / "result.json").read_text()) for name, f in folders.items()}
    for key in ("train_loss", "test_loss"):
        np.testing.assert_allclose([h[key] for h in results["two"]["history"]],
                                   [h[key] for h in results["one"]["history"]], rtol=2e-4)
    records = {name: experiment.runner.read_jsonl(f / "metrics.jsonl")
               for name, f in folders.items()}
    assert [r["step"] for r in records["two"]] == [r["step"] for r in records["one"]]
    # one run, one entry: process 0's, from the start
    assert [s["from_step"] for s in results["two"]["segments"]] == [0]
    if results["two"]["cores"] is not None:    # process 0 watched its own cores only
        assert results["two"]["cores"]["processes"] == 2
        assert experiment.report.clock(results["two"]) == "not recorded"
    # process 1 writes no TensorBoard file: the two processes leave as many as one process
    tensorboard = {name: sorted((f / "tensorboard").iterdir()) for name, f in folders.items()}
    assert len(tensorboard["two"]) == len(tensorboard["one"]) >= 1
    assert (tmp_path / "two" / "runs" / "tiny" / "report.md").is_file()


def test_processes_that_would_pick_different_formulations_are_refused(monkeypatch):
    """The processes' formulation classes are gathered and compared: equal ones pass, and any
    difference (or a process that could not say its own) is one error naming each process's."""
    from jax.experimental import multihost_utils

    from jaxconv.train import hosts
    from jaxconv.tuning import native

    classes = {}
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(multihost_utils, "process_allgather",
                        lambda local: np.stack([local, classes["other"]]))

    def other(text):
        raw = np.zeros(hosts._CLASS_BYTES, np.uint8)
        raw[:len(text)] = np.frombuffer(text.encode(), np.uint8)
        classes["other"] = raw

    other(hosts.formulation_class())
    hosts.check_same_formulation_class()
    other("avx2 CPU, no native extension, jaxlib 0.10.2")
    with pytest.raises(ValueError, match=r"differ in what decides the formulations \(process "
                                         r"0: .*; process 1: avx2 CPU, no native extension"):
        hosts.check_same_formulation_class()
    monkeypatch.setenv("JAXCONV_NATIVE", "maybe")
    monkeypatch.setattr(hosts, "formulation_class", lambda: str(native.enabled()))
    with pytest.raises(ValueError, match=r"process 0: error: JAXCONV_NATIVE='maybe'"):
        hosts.check_same_formulation_class()


@pytest.mark.skipif(not __import__("jaxconv.tuning.native", fromlist=["x"]).available(),
                    reason="needs the native extension on one process and not the other")
def test_a_two_process_run_with_the_extension_on_one_process_stops_on_both(tmp_path):
    """Two processes that differ in the native extension would compile different programs:
    both stop before training with the same error naming each one's class, instead of one
    waiting for the other."""
    from jaxconv.tuning import machine

    path = write_config(tmp_path, dict(TINY, variants=TINY["variants"][:1]))
    codes, outs = _run_two_processes(path, tmp_path, timeout=240,
                                     process_env={1: {"JAXCONV_NATIVE": "0"}})
    assert codes == [2, 2], outs
    for out in outs:
        assert "differ in what decides the formulations" in out, out[-2000:]
        assert f"process 0: {machine.isa()} CPU, native extension with oneDNN" in out
        assert f"process 1: {machine.isa()} CPU, no native extension" in out
        assert "Traceback" not in out
    assert not list(tmp_path.glob("runs/**/result.json"))


def test_processes_without_a_coordinator_are_refused(tmp_path, capsys):
    assert main(["run", str(write_config(tmp_path)), "--processes", "2"]) != 0
    assert "a multi-host run also needs --coordinator HOST:PORT" in capsys.readouterr().err
    assert main(["run", str(write_config(tmp_path)), "--processes", "0",
                 "--coordinator", "localhost:1"]) != 0
    assert "--processes: 0 must be at least 1" in capsys.readouterr().err


def test_a_different_config_in_the_same_folder_is_refused(tmp_path):
    path = write_config(tmp_path, dict(TINY, variants=TINY["variants"][:1]))
    experiment.run(experiment.load(path), command="test", progress=False, log=lambda s: None)
    changed = experiment.load(path, ["train.learning_rate=0.5"])
    with pytest.raises(experiment.ConfigError, match=r"holds runs of a different config "
                                                      r"\(differs in: train\)"):
        experiment.run(changed, command="test", progress=False, log=lambda s: None)
    wider = experiment.load(path, ["variants[0].model.layout.width=16"])
    with pytest.raises(experiment.ConfigError, match=r"holds runs of a different model for "
                                                      r"variant 'basic'"):
        experiment.run(wider, command="test", progress=False, log=lambda s: None)


def test_folders_written_by_earlier_versions_resume_or_are_refused_for_real(tmp_path):
    path = write_config(tmp_path, dict(TINY, variants=TINY["variants"][:1]))
    config = experiment.load(path)
    experiment.run(config, command="test", progress=False, log=lambda s: None)
    saved = config.run_dir / "basic" / "model.yaml"
    spec = yaml.safe_load(saved.read_text())
    del spec["drop_path"]                       # written before drop_path existed
    saved.write_text(yaml.safe_dump(spec))
    lines = []
    experiment.run(experiment.load(path, ["seeds=[0, 1]"]), command="test", progress=False,
                   log=lines.append)
    assert "basic seed 0: finished earlier, skipped" in lines
    assert (config.run_dir / "basic" / "seed-1" / "result.json").is_file()
    for key in ("init", "zero_init_residual"):   # written before init existed: Flax's init
        spec.pop(key)
    saved.write_text(yaml.safe_dump(spec))
    with pytest.raises(experiment.ConfigError, match="holds runs of a different model"):
        experiment.run(config, command="test", progress=False, log=lambda s: None)
    flax_init = experiment.load(path, ["model.init=flax"])   # what that folder trained
    experiment.runner._check_run_dir(flax_init, experiment.runner._resolved(flax_init))


def test_a_diverged_run_is_recorded_and_the_study_goes_on(tmp_path, capsys, monkeypatch):
    real_fit = experiment.runner.train.fit

    def fit(model, *args, description, **kwargs):
        if description.startswith("basic"):
            raise experiment.runner.train.TrainingDiverged("training diverged at step 3",
                                                          step=3, epoch=1)
        return real_fit(model, *args, description=description, **kwargs)

    monkeypatch.setattr(experiment.runner.train, "fit", fit)
    path = write_config(tmp_path)
    assert main(["run", str(path), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "basic seed 0: training diverged at step 3; recorded as diverged, going on" in out
    assert "fire seed 0: test accuracy" in out
    run_dir = tmp_path / "runs" / "tiny"
    record = json.loads((run_dir / "basic" / "seed-0" / "result.json").read_text())
    assert record["status"] == "diverged" and record["diverged_at"] == {"step": 3, "epoch": 1}
    report = (run_dir / "report.md").read_text()
    assert "every seed diverged" in report and "basic seed 0: training diverged" in report
    with (run_dir / "results.csv").open() as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    assert (rows["basic"]["seeds"], rows["basic"]["diverged"]) == ("0", "1")
    assert (rows["fire"]["seeds"], rows["fire"]["diverged"]) == ("1", "0")
    # The rerun neither trains the diverged run again nor fails on it.
    assert main(["run", str(path), "--quiet"]) == 0
    assert capsys.readouterr().out.count("finished earlier, skipped") == 2


def test_a_seed_held_by_another_process_is_skipped(tmp_path):
    path = write_config(tmp_path)
    config = experiment.load(path)
    lines = []
    with experiment.runner.run_lock(config.run_dir / "basic" / "seed-0") as held:
        assert held
        experiment.run(config, command="test", progress=False, log=lines.append)
    assert any("basic seed 0: another process is training it" in line for line in lines)
    assert not (config.run_dir / "basic" / "seed-0" / "result.json").exists()
    assert (config.run_dir / "fire" / "seed-0" / "result.json").is_file()


def test_the_report_keeps_to_the_config_and_flags_mixed_provenance(tmp_path):
    path = write_config(tmp_path, dict(TINY, variants=TINY["variants"][:1], seeds=[0, 1]))
    experiment.run(experiment.load(path), command="first", progress=False, log=lambda s: None)
    run_dir = tmp_path / "runs" / "tiny"
    one = run_dir / "basic" / "seed-1" / "result.json"
    record = json.loads(one.read_text())
    record["provenance"]["cpu"] = "another CPU (avx512, 64 cores)"
    one.write_text(json.dumps(record))
    experiment.report.build(run_dir)
    report = (run_dir / "report.md").read_text()
    assert "warning: these runs come from 2 different" in report
    assert "another CPU (avx512, 64 cores)" in report and "first`" in report
    # A later command with fewer seeds reports those seeds only, and says what it left out.
    experiment.run(experiment.load(path, ["seeds=[0]"]), command="second", progress=False,
                   log=lambda s: None)
    report = (run_dir / "report.md").read_text()
    assert "left out: basic/seed-1" in report and "warning" not in report
    assert "first`" in report and "second`" in report
    with (run_dir / "results.csv").open() as f:
        assert next(csv.DictReader(f))["seeds"] == "1"


def test_the_report_says_which_differences_exceed_seed_noise():
    """Ranked by mean; a Student-t interval per variant (t at 97.5% with 2 degrees of freedom
    is 4.3027, from the published table); each against the next variant down paired by seed,
    with Holm's correction over the neighbour tests; Welch's test, marked, where the seeds
    differ."""
    def record(variant, seed, acc, status="finished"):
        return {"variant": variant, "seed": seed, "status": status,
                "history": [{"test_accuracy": acc}]}

    found = [record("b", s, a) for s, a in enumerate((0.80, 0.81, 0.82))] + \
        [record("a", s, a) for s, a in enumerate((0.90, 0.915, 0.92))] + \
        [record("c", s, a) for s, a in enumerate((0.82, 0.80, 0.81))] + \
        [record("d", 0, 0.5), record("d", 1, float("nan"), status="diverged"),
         record("d", 2, float("nan"))]
    lines = experiment.report.seed_noise(found)
    rows = [line.split(" | ") for line in lines[2:6]]
    half = 4.302652729911275 / 3 ** 0.5
    assert [r[1] for r in rows] == ["a", "b", "c", "d"]
    assert rows[1][3:5] == ["81.00 ± 1.00 %", f"{81 - half:.2f} - {81 + half:.2f} %"]
    # a - b per seed: 10, 10.5, 10 points: mean 61/6, sd sqrt(1/12), paired t on 2 dof
    d_half = 4.302652729911275 * (1 / 12) ** 0.5 / 3 ** 0.5
    assert rows[0][5:8] == [f"10.17 points ({61 / 6 - d_half:.2f} to {61 / 6 + d_half:.2f})",
                            f"d_z {61 / 6 / (1 / 12) ** 0.5:.2f}", "paired, 3 seeds"]
    # b - c per seed: -2, 1, 1: mean 0, p 1; two tests in the family (d has one seed)
    assert rows[1][5:11] == ["0.00 points (-4.30 to 4.30)", "d_z 0.00", "paired, 3 seeds",
                             "1.000", "1.000", "no |"]
    assert float(rows[0][9]) == pytest.approx(min(1.0, 2 * float(rows[0][8])), abs=1e-3)
    assert rows[2][5:] == ["31.00 points", "-", "-", "-", "-", "unknown: one seed |"]
    assert rows[3][2:5] == ["1", "50.00 %", "-"]
    assert "Left out, no finite accuracy: d seed 2." in lines
    assert "over the 2 neighbour tests" in lines[7]
    assert experiment.report.seed_noise(found[:3]) == ["One variant: nothing to compare.", ""]
    assert experiment.report.seed_noise([record("a", 0, 0.9), record("b", 0, 0.8)])[5] == \
        "No neighbours both have two seeds or more: nothing can be tested."
    same = [record(v, s, acc) for v, acc in (("e", 0.7), ("f", 0.6)) for s in (0, 1)]
    assert experiment.report.seed_noise(same)[2].endswith("| 0.000 | 0.000 | yes |")
    unpaired = [record("e", s, 0.7 + s / 100) for s in (0, 1, 2)] + \
        [record("f", s, 0.6 + s / 100) for s in (0, 1, 3)]
    assert "| **Welch (unpaired: the seeds differ)** |" in experiment.report.seed_noise(
        unpaired)[2]


@pytest.mark.parametrize(("overrides", "message"), [
    (["trian.epochs=1"], r"trian: unknown key \(did you mean 'train'\?\); valid keys at the "
                         r"top: name, data"),
    (["train.epoch=1"], r"train: unknown key 'epoch' \(did you mean 'epochs'\?\)"),
    (["train.optimizer=adam"], r"train.optimizer: 'adam' is not one of sgd, adamw"),
    (["data.name=imagenet"], r"data.name: 'imagenet' is not one of digits, mnist"),
    (["variants[0].model.layout.block=botleneck"],
     r"variants\[0\].model: .*block 'botleneck' does not exist \(did you mean 'bottleneck'\?\)"),
    (["variants[1].model.preset=fire-0.3m"],
     r"variants\[1\].model: name exactly one of preset, layout or stages; got preset, layout"),
    (["seeds=[0, 0]"], r"seeds: \[0, 0\] has repeats"),
    (["seeds=three"], r"seeds: 'three' must be a non-empty list"),
    (["train.epochs"], r"--set 'train.epochs': expected KEY=VALUE"),
    (["train.epochs=[1"], r"--set 'train.epochs=\[1': the value is not valid YAML"),
])
def test_config_errors_name_the_key(tmp_path, overrides, message):
    path = write_config(tmp_path)
    with pytest.raises(experiment.ConfigError, match=message):
        experiment.load(path, overrides)


def test_cli_reports_config_errors_without_a_traceback(tmp_path, capsys):
    path = write_config(tmp_path)
    assert main(["run", str(path), "--set", "train.lr=1"]) == 2
    assert "jaxconv run: error: train: unknown key 'lr'" in capsys.readouterr().err


@pytest.mark.parametrize("name", examples.names())
def test_shipped_configs_are_valid_and_say_how_to_run_them(name):
    path = examples.path(name)
    loaded = experiment.load(path)
    lines = list(itertools.takewhile(lambda line: line.startswith("#"),
                                     path.read_text().splitlines()))
    command = [line for line in lines if line.startswith("# Command:")]
    time = [i for i, line in enumerate(lines) if line.startswith("# Time")]
    assert command and time, f"{name}: its header needs a '# Command:' and a '# Time' line"
    # the time may wrap onto the lines that follow its own
    said = " ".join(line.lstrip("#").strip() for line in lines[time[0]:time[0] + 3])
    assert "2 CPU cores" in said
    assert "TODO" not in "\n".join(lines)
    assert loaded.variants and loaded.seeds
    # the command names this config, directly or through the script that runs it
    start = lines.index(command[0])
    block = " ".join([lines[start], *itertools.takewhile(
        lambda line: line.startswith("#  "), lines[start + 1:])])
    target = f"configs/{name}.yaml"
    scripts = re.findall(r"experiments/\w+\.sh", block)
    root = path.resolve().parents[len(pathlib.PurePath(name).parts)]
    named = (target in block or f"run {name} " in f"{block} "
             or any(target in (root / script).read_text() for script in scripts))
    assert named, f"{name}: its '# Command:' names neither {target} nor a script that runs it"


def test_the_report_says_how_a_mixed_precision_config_trains():
    import pathlib

    from jaxconv.experiment import report

    path = pathlib.Path(__file__).parents[2] / "configs/mixed_precision.yaml"
    lines = report.settings(yaml.safe_load(path.read_text()))
    assert lines[0].startswith("- precision: bfloat16 forward and backward passes; float32 "
                               "parameters")
    assert lines[1] == "- convnext: init reference, drop-path 0.1 (linear over depth)"
    assert experiment.load(path).train.compute_dtype == "bfloat16"
    assert report.settings({"variants": [{"name": "a", "model": {}}]}) == [
        "- precision: float32 forward and backward passes", "- a: init reference"]


def test_every_command_says_what_it_does_with_an_example(capsys):
    from jaxconv.cli import parser

    top = parser()
    top_help = top.format_help()
    assert "thin face" not in top_help and "jaxconv run configs/quickstart.yaml" in top_help
    verbs = next(a for a in top._actions if a.dest == "verb").choices
    assert {"run", "report", "retention", "predict", "export", "bench"} <= set(verbs)
    for name, sub in verbs.items():
        text = " ".join(sub.format_help().split())
        assert f"Example: jaxconv {name} " in text, name


def test_a_library_run_leaves_the_process_environment_alone(tmp_path, monkeypatch):
    import os

    from jaxconv import environment

    monkeypatch.setattr(environment, "backends_started", lambda: False)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    config = experiment.load(write_config(tmp_path, dict(TINY, variants=TINY["variants"][:1])))
    experiment.run(config, command="test", progress=False, log=lambda line: None,
                   plan_only=True)
    assert "XLA_FLAGS" not in os.environ

