"""`experiments/time_runs.py`: one `jaxconv run` process per seed timed end to end, with the
other work on the cores meanwhile, written per variant and seed."""

import json
import os

import pytest
import yaml

from tests.experiment import scripts

pytestmark = pytest.mark.experiments


@pytest.fixture(scope="module")
def timing():
    return scripts.load("time_runs")


def stat_line(user, nice, system, idle, iowait=0, irq=0, softirq=0, steal=0):
    return (f"cpu  {user} {nice} {system} {idle} {iowait} {irq} {softirq} {steal} 0 0\n"
            "cpu0 1 2 3 4 5 6 7 8 0 0\n")


def test_busy_time_counts_every_state_but_idle_and_iowait(timing):
    tick = os.sysconf("SC_CLK_TCK")
    assert timing.busy_seconds(stat_line(1, 2, 3, 1000, 500, 4, 5, 6)) == 21 / tick
    with pytest.raises(ValueError, match="expected the 'cpu' line"):
        timing.busy_seconds("intr 1 2 3\n")


def test_quiet_means_other_work_under_two_percent_of_the_cores(timing):
    assert timing.quiet(3.9, wall_s=100, cores=2)
    assert not timing.quiet(4.1, wall_s=100, cores=2)


def test_a_retimed_seed_replaces_its_entry_and_keeps_the_others(timing, tmp_path):
    path = tmp_path / "wall_seconds.json"
    assert timing.merge(path, {"net/seed-1": {"wall_s": 2}}) == {"net/seed-1": {"wall_s": 2}}
    path.write_text(json.dumps({"net/seed-0": {"wall_s": 1}, "net/seed-1": {"wall_s": 2}}))
    assert timing.merge(path, {"net/seed-1": {"wall_s": 3}}) == {
        "net/seed-0": {"wall_s": 1}, "net/seed-1": {"wall_s": 3}}
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


def test_times_each_seed_as_its_own_run_and_refuses_a_finished_one(timing, tmp_path, capsys):
    config = write_config(tmp_path)
    timing.main([str(config), "--seed", "1"])
    study = tmp_path / "results" / "timed"
    assert (study / "net" / "seed-1" / "result.json").is_file()
    assert not (study / "net" / "seed-0").exists()
    entry = json.loads((study / "wall_seconds.json").read_text())["net/seed-1"]
    assert entry["exit_code"] == 0 and entry["cold_cache"]
    assert entry["wall_s"] > 0 and entry["own_cpu_s"] > 0 and entry["other_cpu_s"] >= 0
    assert entry["command"].endswith("--variant net --seed 1") and entry["cpu"]
    assert isinstance(entry["quiet"], bool)
    with pytest.raises(SystemExit):
        timing.main([str(config), "--seed", "1"])
    assert "--seed: 1 finished already" in capsys.readouterr().err


def test_a_config_of_several_variants_needs_one_named(timing, tmp_path, capsys):
    config = write_config(tmp_path, variants=("a", "b"))
    with pytest.raises(SystemExit):
        timing.main([str(config)])
    assert "has 2 variants (a, b); name the one to time" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        timing.main([str(config), "--variant", "c"])
    assert "'c' is not in" in capsys.readouterr().err
