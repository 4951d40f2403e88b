"""`experiments/lever_step_seconds.py`: each trial's step timed from its recorded config, the
timings merged into one file per CPU, and what the lever table reads from it."""

import importlib.util
import json
import sys

import pytest
import yaml

from tests.experiment import scripts

#: A one-off study script's test: in `make test` and CI, skipped by ``-m "not experiments"``.
pytestmark = pytest.mark.experiments


@pytest.fixture(scope="module")
def timing():
    return scripts.load("lever_step_seconds")


def write_trial(root, name, batch_size=32):
    folder = root / f"levers-{name}"
    folder.mkdir()
    config = {"name": f"levers-{name}", "output_dir": str(root), "data": {"name": "digits"},
              "train": {"epochs": 1, "batch_size": batch_size},
              "model": {"layout": {"width": 8, "depth": 1, "stem_strides": 1}},
              "variants": [{"name": "net", "model": {"layout": {"block": "basic"}}}],
              "seeds": [0]}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def test_every_trial_with_a_config_or_the_named_ones(timing, tmp_path):
    write_trial(tmp_path, "baseline")
    write_trial(tmp_path, "ema")
    (tmp_path / "levers-empty").mkdir()
    assert [f.name for f in timing.folders(tmp_path, [])] == ["levers-baseline", "levers-ema"]
    assert [f.name for f in timing.folders(tmp_path, ["ema"])] == ["levers-ema"]
    with pytest.raises(SystemExit, match=r"TRIAL: dirac not under .*; trials: baseline, ema"):
        timing.folders(tmp_path, ["dirac"])
    with pytest.raises(SystemExit, match=r"has no levers-\*/config.yaml"):
        timing.folders(tmp_path / "levers-empty", [])


def lever_table(monkeypatch):
    """``experiments/lever_table.py`` as a module in ``sys.modules`` (its dataclasses resolve
    their annotations there) for the length of a test."""
    spec = importlib.util.spec_from_file_location("lever_table",
                                                  scripts.EXPERIMENTS / "lever_table.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_rounds_rotate_so_a_drift_spreads_over_every_trial(timing):
    assert timing.rounds_order(["a", "b", "c"], 4) == [["a", "b", "c"], ["b", "c", "a"],
                                                       ["c", "a", "b"], ["a", "b", "c"]]


def test_times_each_trial_in_one_sitting_and_the_lever_table_reads_it(timing, tmp_path,
                                                                       monkeypatch):
    write_trial(tmp_path, "baseline")
    write_trial(tmp_path, "batch-64", batch_size=64)
    timing.main(["--results", str(tmp_path), "--rounds", "2"])
    record = json.loads((tmp_path / "step_seconds.json").read_text())
    assert set(record["trials"]) == {"baseline", "batch-64"} and record["rounds"] == 2
    assert record["commit"] and "jaxlib" in record["versions"]
    assert len(record["load_average"]["before"]) == 3
    for entry in record["trials"].values():
        assert len(entry["rounds"]) == 2 and all(s > 0 for s in entry["rounds"])
        assert min(entry["rounds"]) <= entry["seconds_per_step"] <= max(entry["rounds"])
        assert entry["choices"]["policy_version"] >= 1
    timed = lever_table(monkeypatch).step_seconds(tmp_path)
    assert timed.seconds == {k: v["seconds_per_step"] for k, v in record["trials"].items()}
    assert timed.machine.startswith(record["cpu"])
    # a later sitting replaces the file: timings of two sittings are never mixed
    timing.main(["--results", str(tmp_path), "--rounds", "1", "baseline"])
    assert set(json.loads((tmp_path / "step_seconds.json").read_text())["trials"]) == \
        {"baseline"}


def test_rounds_below_one_are_refused(timing, tmp_path, capsys):
    write_trial(tmp_path, "baseline")
    with pytest.raises(SystemExit):
        timing.main(["--results", str(tmp_path), "--rounds", "0"])
    assert "--rounds: 0 must be an integer >= 1" in capsys.readouterr().err
