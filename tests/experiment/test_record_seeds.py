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
    return {"wall_s": wall, "quiet": quiet, "cold_cache": True, "other_cpu_s": other,
            "cpu": "Xeon (avx512)"}


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
    assert text.startswith("2 of 5 seeds: mean test accuracy 94.16%, standard deviation 0.19")
    assert "so far (the goal, 94%, is judged over 5 seeds)" in text
    assert ("slowest quiet seed 24.8 min (1 of 5 seeds timed quietly), against the goal of 5 "
            "min.") in text


def test_runs_already_read_are_used_as_given(record, tmp_path):
    write_run(tmp_path, 0, 0.9430, 0.9492)
    runs = record.report.results(tmp_path)
    (tmp_path / "net" / "seed-0" / "result.json").unlink()
    assert [s["test"] for s in record.seeds(tmp_path, runs)] == [pytest.approx(94.30)]
    assert record.seeds(tmp_path) == []


def test_the_goal_is_judged_once_every_seed_has_finished(record, tmp_path):
    for seed, test in enumerate([0.939, 0.938]):
        write_run(tmp_path, seed, test, 0.95)
    text = record.summary(record.seeds(tmp_path), goal=94.0, minutes=5, count=2)
    assert "; the goal of 94%: missed by 0.15 points" in text
    assert "slowest" not in text        # no wall_seconds.json: no time at all


def test_a_folder_with_two_designs_or_none_is_a_clear_error(record, tmp_path):
    write_run(tmp_path, 0, 0.94, 0.95, design="a")
    write_run(tmp_path, 0, 0.94, 0.95, design="b")
    with pytest.raises(ValueError, match=r"a record trains one design, found \['a', 'b'\]"):
        record.seeds(tmp_path)
    with pytest.raises(SystemExit, match=r"a record trains one design"):
        record.main([str(tmp_path)])
    with pytest.raises(SystemExit, match=r"no such results folder"):
        record.main([str(tmp_path / "missing")])


def test_a_near_miss_is_a_miss_and_never_reads_as_zero(record):
    assert record.verdict(93.996, 94.0, "points", True) == "missed by less than 0.01 points"
    assert record.verdict(94.004, 94.0, "points", True) == "reached by less than 0.01 points"
    assert record.verdict(5.04, 5.0, "min", False) == "missed by 0.04 min"
    assert record.verdict(4.5, 5.0, "min", False) == "reached by 0.50 min"


def test_a_timing_counts_only_for_the_run_it_timed_from_empty_caches(record, tmp_path):
    for seed in range(4):
        write_run(tmp_path, seed, 0.94, 0.95)
    origin = {"commit": "abc1234", "date": "2026-12-06 08:33 UTC"}
    for seed, extra in [(0, origin), (1, {"commit": "abc1234", "date": "2026-12-07 10:00 UTC"}),
                        (2, {})]:
        path = tmp_path / "net" / f"seed-{seed}" / "result.json"
        result = json.loads(path.read_text())
        result["provenance"] = {**origin, **extra}
        path.write_text(json.dumps(result))
    warm = {**timing(1400.0, True), **origin, "cold_cache": False}
    (tmp_path / "wall_seconds.json").write_text(json.dumps({
        "net/seed-0": {**timing(1400.0, True), **origin, "cold_cache": True},
        "net/seed-1": {**timing(1400.0, True), **origin, "cold_cache": True},  # seed retrained
        "net/seed-2": warm}))
    found = record.seeds(tmp_path)
    assert [s["wall_min"] is not None for s in found] == [True, False, False, False]
    cells = [line.split(" | ")[3] for line in record.table(found).splitlines()[2:]]
    assert cells == ["23.3 min", "not timed quietly", "not timed quietly", "not timed"]


def test_a_diverged_seed_is_shown_and_misses_the_goal(record, tmp_path):
    write_run(tmp_path, 0, 0.95, 0.96)
    run = tmp_path / "net" / "seed-1"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({
        "variant": "net", "seed": 1, "status": "diverged", "history": [{"kind": "epoch"}],
        "train_time_s": 10.0}))
    found = record.seeds(tmp_path)
    assert record.table(found).splitlines()[3].startswith("| 1 | diverged | - |")
    text = record.summary(found, goal=94.0, minutes=5, count=2)
    assert text.startswith("2 of 2 seeds (1 diverged): mean test accuracy 95.00%")
    assert "the goal of 94% is missed: a seed diverged" in text
