"""A run's ``result.json`` records its choices under a schema version; folders written before
(the committed studies) still report and load, their choices marked as not recorded."""

import json
import pathlib
import shutil

import pytest
import yaml

from jaxconv import experiment
from jaxconv.experiment import provenance, runner
from jaxconv.functional.policy import POLICY_VERSION

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = {
    "name": "tiny",
    "data": {"name": "synthetic"},
    "train": {"epochs": 1, "batch_size": 64, "eval_batch_size": 64, "compile_options": "default"},
    "model": {"layout": {"block": "basic", "width": 8, "depth": 1, "stem_strides": 1}},
    "variants": [{"name": "basic"}],
    "seeds": [0],
}


def test_a_committed_study_still_reports_its_choices_as_not_recorded(tmp_path):
    study = shutil.copytree(ROOT / "experiments/results/fashion_mnist/long_run",
                            tmp_path / "long_run")
    (study / "report.md").unlink()
    experiment.report.build(study)
    report = (study / "report.md").read_text()
    assert provenance.NOT_RECORDED in report and "| inverted_residual |" in report


def test_a_run_records_its_choices_and_an_older_record_still_loads(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(dict(TINY, output_dir=str(tmp_path / "runs"))))
    config = experiment.load(path)
    experiment.run(config, command="test", progress=False, log=lambda s: None)
    result_path = config.run_dir / "basic" / "seed-0" / "result.json"
    record = json.loads(result_path.read_text())
    assert record["schema_version"] == runner.RESULT_SCHEMA == 5
    assert record["split_seed"] == 0
    assert record["choices"]["policy_version"] == POLICY_VERSION
    choices = record["choices"]
    assert choices["requested"] == "default" and choices["option_set"] == "default"
    assert {"compiler_options", "reason", "machine_class", "xla_flags", "autotune"} <= set(choices)
    report = (config.run_dir / "report.md").read_text()
    assert "- choices: option set default {}" in report
    assert f"formulation policy version {POLICY_VERSION}" in report

    # the same folder as a version-1 writer left it
    old = {k: v for k, v in record.items()
           if k not in ("schema_version", "choices", "split_seed", "segments", "cores")}
    result_path.write_text(json.dumps(old))
    experiment.report.build(config.run_dir)
    assert f"- choices: {provenance.NOT_RECORDED}" in (config.run_dir / "report.md").read_text()
    model = experiment.load_model(config.run_dir, "basic", seed=0)
    assert model.head.out_features == 4


@pytest.mark.parametrize("study", ["bottlenecks", "width_sweep", "long_run"])
def test_a_committed_study_folder_still_matches_its_config(study):
    # written before split_seed existed: its config pins the split to the training seed
    config = experiment.load(ROOT / "configs/fashion_mnist" / f"{study}.yaml")
    assert config.train.split_seed is None
    assert (config.run_dir / "config.yaml").is_file()
    runner._check_run_dir(config, runner._resolved(config))
    fixed = experiment.load(ROOT / "configs/fashion_mnist" / f"{study}.yaml",
                            ["train.split_seed=0"])
    with pytest.raises(experiment.ConfigError, match=r"differs in: train"):
        runner._check_run_dir(fixed, runner._resolved(fixed))


def test_the_report_dates_runs_by_the_start_of_the_process_that_trained_them():
    """A study's runs record when their `jaxconv run` started, not when each run trained, so
    the report names the span as such."""
    records = [{"variant": v, "seed": 0, "provenance": {"date": d, "commit": "abc1234"}}
               for v, d in (("b", "2026-12-06 17:17 UTC"), ("a", "2026-12-06 16:12 UTC"))]
    lines = provenance.describe(records)
    assert ("- started (the `jaxconv run` processes that trained these runs): "
            "2026-12-06 16:12 UTC to 2026-12-06 17:17 UTC") in lines
    assert "- started: not recorded" in provenance.describe([{"variant": "a", "seed": 0}])


def test_the_report_names_a_run_resumed_under_another_commit():
    """A run's provenance is the process that finished it; one resumed under another commit
    says which steps each commit trained."""
    same = [{"from_step": 0, "commit": "abc1234"}, {"from_step": 40, "commit": "abc1234"}]
    mixed = [{"from_step": 0, "commit": "abc1234"}, {"from_step": 2600, "commit": "def5678"}]
    records = [{"variant": "a", "seed": 0, "provenance": {"commit": "abc1234"},
                "segments": same},
               {"variant": "b", "seed": 1, "provenance": {"commit": "def5678"},
                "segments": mixed},
               {"variant": "c", "seed": 0, "provenance": {"commit": "abc1234"}},
               # begun by a process from before runs recorded theirs
               {"variant": "d", "seed": 0, "provenance": {"commit": "abc1234"},
                "segments": [{"from_step": 100, "commit": "abc1234"}]}]
    notes = [line for line in provenance.describe(records) if "another commit" in line]
    assert notes == ["- resumed under another commit, package versions, CPU or backend (each "
                     "process's first step, commit, versions, CPU and backend; the run's "
                     "provenance is its last process's): b/seed-1 (from step 0 at abc1234, "
                     "from step 2600 at def5678); d/seed-0 (from step 0 at a process not "
                     "recorded, from step 100 at abc1234)"]
    # the same commit on another CPU is named too, and a dirty first process is a dirty run
    moved = [{"variant": "e", "seed": 0, "provenance": {"commit": "abc1234", "cpu": "y"},
              "segments": [{"from_step": 0, "commit": "abc1234+dirty", "cpu": "x"},
                           {"from_step": 50, "commit": "abc1234", "cpu": "y"}]}]
    lines = provenance.describe(moved)
    assert any("e/seed-0 (from step 0 at abc1234+dirty x, from step 50 at abc1234 y)" in line
               for line in lines)
    assert any(line.startswith("- **uncommitted changes: e/seed-0") for line in lines)


def test_a_process_that_left_no_checkpoint_drops_out_of_the_segments(tmp_path, monkeypatch):
    """A process that resumed from step s and saved nothing past it (refused, failed, or
    stopped first) trained nothing that remains: the next process from step s replaces it."""
    latest = {"step": None}

    class Checkpoints:
        def __init__(self, folder):
            pass

        def latest(self):
            return latest["step"]

        def close(self):
            pass

    monkeypatch.setattr(runner.train, "Checkpoints", Checkpoints)

    def start(step, commit, write=True):
        latest["step"] = step
        runner._start_segment(tmp_path, {"commit": commit}, write)
        return [(s["from_step"], s["commit"]) for s in
                runner.read_jsonl(tmp_path / runner.SEGMENTS)]

    assert start(None, "a") == [(0, "a")]
    assert start(6, "b") == [(0, "a"), (6, "b")]
    assert start(6, "c") == [(0, "a"), (6, "c")]            # b left nothing past step 6
    assert start(12, "c") == [(0, "a"), (6, "c"), (12, "c")]
    assert start(12, "d", write=False) == [(0, "a"), (6, "c"), (12, "c")]   # not process 0
    assert start(None, "e") == [(0, "e")]                    # begun again from scratch
