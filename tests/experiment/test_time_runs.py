"""`experiments/time_runs.py`: one `jaxconv run` process per seed timed end to end, with the
other work on the cores meanwhile, written per variant and seed."""

import json
import os
import sys

import pytest
import yaml

from tests.experiment import scripts

pytestmark = pytest.mark.experiments


@pytest.fixture(scope="module")
def timing():
    return scripts.load("time_runs")


def test_a_run_counts_the_cpu_of_its_whole_process_tree(timing):
    """The command replaces itself (as `jaxconv` may at start-up) and then waits for a child
    that burns 0.3 CPU seconds: all of it is the run's own time, none other work's."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])"
    replaced = f"import os, sys; os.execv(sys.executable, [sys.executable, '-c', {child!r}])"
    figures = timing.timed([sys.executable, "-c", replaced], dict(os.environ))
    assert figures["exit_code"] == 0 and figures["own_cpu_s"] >= 0.3
    assert figures["wall_s"] >= 0.3


def test_a_retimed_seed_replaces_its_entry_and_keeps_the_others(timing, tmp_path):
    path = tmp_path / "wall_seconds.json"
    assert timing.merge(path, {"net/seed-1": {"wall_s": 2}}) == {"net/seed-1": {"wall_s": 2}}
    path.write_text(json.dumps({"net/seed-0": {"wall_s": 1}, "net/seed-1": {"wall_s": 2}}))
    merged = timing.merge(path, {"net/seed-1": {"wall_s": 3}, "net/seed-10": {"wall_s": 4}})
    assert merged == {"net/seed-0": {"wall_s": 1}, "net/seed-1": {"wall_s": 3},
                      "net/seed-10": {"wall_s": 4}}
    assert list(timing.merge(path, {"net/seed-2": {}})) == ["net/seed-0", "net/seed-1",
                                                           "net/seed-2"]
    path.write_text("[]")
    with pytest.raises(ValueError, match=r"--output: .* holds list"):
        timing.merge(path, {})


def write_config(root, variants=("net",)):
    config = {"name": "timed", "output_dir": str(root / "results"), "data": {"name": "digits"},
              "train": {"epochs": 1, "batch_size": 64},
              "model": {"layout": {"width": 8, "depth": 1, "stem_strides": 1}},
              "variants": [{"name": v, "model": {"layout": {"block": "basic"}}}
                           for v in variants],
              "seeds": [0, 1]}
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_times_each_seed_as_its_own_whole_run_and_refuses_a_started_one(timing, tmp_path,
                                                                       capsys):
    config = write_config(tmp_path)
    timing.main([str(config), "--seed", "1", "--seed", "1"])
    study = tmp_path / "results" / "timed"
    result = json.loads((study / "net" / "seed-1" / "result.json").read_text())
    assert not (study / "net" / "seed-0").exists()
    timings = json.loads((study / "wall_seconds.json").read_text())
    assert list(timings) == ["net/seed-1"]
    entry = timings["net/seed-1"]
    assert entry["exit_code"] == 0 and entry["cold_cache"] and entry["own_cpu_s"] > 0
    assert entry["wall_s"] > entry["own_cpu_s"] / len(entry["cores"])
    assert entry["commit"] == result["provenance"]["commit"]
    assert entry["cpu"] == result["provenance"]["cpu"]
    assert entry["command"] == f"jaxconv run {config} --quiet --variant net --seed 1"
    assert entry["core_count"] == len(entry["cores"]) and isinstance(entry["quiet"], bool)
    # a seed with anything in its folder (here a half-trained one) would be resumed or skipped
    (study / "net" / "seed-0").mkdir()
    for seeds in (["--seed", "1"], ["--seed", "0"]):
        with pytest.raises(SystemExit):
            timing.main([str(config), *seeds])
        assert "already under" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        timing.main([str(config), "--seed", "7"])
    assert "--seed: 7 not in" in capsys.readouterr().err


def test_only_a_finished_run_of_every_epoch_written_by_the_timed_process_counts(timing,
                                                                                tmp_path):
    path = tmp_path / "result.json"
    assert timing.finished_run(path, epochs=2, since=0) is None
    path.write_text(json.dumps({"status": "finished", "history": [{}, {}]}))
    assert timing.finished_run(path, epochs=2, since=0) == {"status": "finished",
                                                             "history": [{}, {}]}
    assert timing.finished_run(path, epochs=3, since=0) is None
    assert timing.finished_run(path, epochs=2, since=path.stat().st_mtime + 1) is None
    path.write_text(json.dumps({"status": "diverged", "history": [{}, {}]}))
    assert timing.finished_run(path, epochs=2, since=0) is None


def test_a_config_of_several_variants_needs_one_named(timing, tmp_path, capsys):
    config = write_config(tmp_path, variants=("a", "b"))
    with pytest.raises(SystemExit):
        timing.main([str(config)])
    assert "has 2 variants (a, b); name the one to time" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        timing.main([str(config), "--variant", "c"])
    assert "'c' is not in" in capsys.readouterr().err
