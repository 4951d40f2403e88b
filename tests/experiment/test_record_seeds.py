"""`experiments/record_seeds.py`: a record's seeds with their accuracy and quiet wall time."""

import json

import pytest

from tests.experiment import scripts

pytestmark = pytest.mark.experiments


@pytest.fixture(scope="module")
def record():
    return scripts.load("record_seeds")


def write_run(folder, seed, test, val, design="net", train_s=600.0):
    run = folder / design / f"seed-{seed}"
    run.mkdir(parents=True)
    history = [{"kind": "epoch", "epoch": 1, "val_accuracy": val - 0.01},
               {"kind": "epoch", "epoch": 2, "val_accuracy": val, "test_accuracy": test}]
    (run / "result.json").write_text(json.dumps({
        "variant": design, "seed": seed, "status": "finished", "history": history,
        "train_time_s": train_s}))


def timing(wall, quiet, other=0.5):
    return {"wall_s": wall, "quiet": quiet, "other_cpu_s": other, "cpu": "Xeon (avx512)"}


def test_each_seed_shows_its_accuracy_and_only_a_quiet_wall_time(record, tmp_path):
    write_run(tmp_path, 1, 0.9403, 0.9483)
    write_run(tmp_path, 0, 0.9430, 0.9492, train_s=1260.0)
    (tmp_path / "wall_seconds.json").write_text(json.dumps({
        "net/seed-0": timing(1489.3, True), "net/seed-1": timing(1500.0, False, other=900.0)}))
    found = record.seeds(tmp_path)
    assert [s["seed"] for s in found] == [0, 1]
    assert found[0]["wall_min"] == pytest.approx(1489.3 / 60) and found[1]["wall_min"] is None
    lines = record.table(found).splitlines()
    assert lines[2] == ("| 0 | 94.30 % | 94.92 % | 24.8 min | 21.0 min | 0.5 | Xeon (avx512) |")
    assert lines[3] == "| 1 | 94.03 % | 94.83 % | not timed quietly | - | 900.0 | Xeon (avx512) |"
    text = record.summary(found, goal=94.0, minutes=5, count=5)
    assert text.startswith("2 of 5 seeds: mean test accuracy 94.16% ± 0.19")
    assert "so far (the goal, 94%, is judged over 5 seeds)" in text
    assert "slowest quiet seed 24.8 min against the goal of 5 min (1 of 2 seeds" in text


def test_the_goal_is_judged_once_every_seed_has_finished(record, tmp_path):
    for seed, test in enumerate([0.939, 0.938]):
        write_run(tmp_path, seed, test, 0.95)
    text = record.summary(record.seeds(tmp_path), goal=94.0, minutes=5, count=2)
    assert ", -0.15 points from the goal of 94%" in text
    assert "slowest" not in text        # no wall_seconds.json: no time at all


def test_a_folder_with_two_designs_or_none_is_a_clear_error(record, tmp_path):
    write_run(tmp_path, 0, 0.94, 0.95, design="a")
    write_run(tmp_path, 0, 0.94, 0.95, design="b")
    with pytest.raises(SystemExit, match=r"a record trains one design, found \['a', 'b'\]"):
        record.seeds(tmp_path)
    with pytest.raises(SystemExit, match=r"no such results folder"):
        record.main([str(tmp_path / "missing")])
