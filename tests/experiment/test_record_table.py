"""`experiments/record_table.py`: the record search's designs and lengths on validation
accuracy alone, paired by seed within a length."""

import json

import pytest

from tests.experiment import scripts

pytestmark = pytest.mark.experiments


@pytest.fixture(scope="module")
def records():
    return scripts.load("record_table")


def write_study(root, epochs, designs, name="record-search-e{epochs}"):
    """``designs``: {design: {seed: [val accuracy per epoch, as fractions]}}; the test
    accuracy is set far from the validation figures, so a table that showed it would show."""
    study = root / name.format(epochs=epochs)
    for design, seeds in designs.items():
        for seed, curve in seeds.items():
            run = study / design / f"seed-{seed}"
            run.mkdir(parents=True)
            history = [{"kind": "epoch", "epoch": e + 1, "step": 10 * (e + 1), "val_accuracy": v,
                        "test_accuracy": 0.1234} for e, v in enumerate(curve)]
            (run / "metrics.jsonl").write_text("".join(
                json.dumps(h) + "\n" for h in [{"kind": "train", "step": 1}, *history]))
            (run / "result.json").write_text(json.dumps({
                "variant": design, "seed": seed, "status": "finished", "history": history}))
    return study


def test_rows_rank_designs_by_validation_and_pair_them_with_the_leader(records, tmp_path):
    write_study(tmp_path, 2, {"fast": {0: [0.93, 0.940], 1: [0.93, 0.942]},
                              "slow": {0: [0.90, 0.943], 1: [0.90, 0.951]}})
    write_study(tmp_path, 1, {"fast": {0: [0.91], 1: [0.92]}})
    lines = records.table(tmp_path, target=94.5).splitlines()
    assert "12.34" not in "\n".join(lines)
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [c[:2] for c in cells] == [["1", "fast"], ["2", "slow"], ["2", "fast"]]
    assert cells[1][3:] == ["94.70 ± 0.57 %", "94.30 / 95.10", "-", "2", "2", "20"]
    # fast - slow per seed: -0.3 and -0.9 points: mean -0.6, SE 0.42 (their std) / sqrt(2)
    assert cells[2][5] == "-0.60 ± 0.30" and cells[2][6:8] == ["2", "not reached"]
    assert cells[0][6:8] == ["not reached", "not reached"]


def test_no_record_search_is_a_clear_error(records, tmp_path):
    with pytest.raises(SystemExit, match=r"has no record-search-e<N> folders"):
        records.table(tmp_path)


def test_a_trials_folder_is_a_row_of_its_length_paired_with_the_leader(records, tmp_path):
    write_study(tmp_path, 2, {"net": {0: [0.90, 0.940], 1: [0.90, 0.942]}})
    write_study(tmp_path, 2, {"net": {0: [0.90, 0.946], 1: [0.90, 0.950]}},
                name="record-search-e{epochs}-cutout")
    write_study(tmp_path, 2, {"net": {0: [0.5, 0.5]}}, name="best-search-e{epochs}")
    cells = [[c.strip() for c in line.strip("|").split("|")]
             for line in records.table(tmp_path).splitlines()[2:]]
    assert [c[:3] for c in cells] == [["2", "net + cutout", "2"], ["2", "net", "2"]]
    # net - (net + cutout) per seed: -0.6 and -0.8 points
    assert cells[1][5] == "-0.70 ± 0.10"


def test_the_prefix_picks_another_search(records, tmp_path):
    write_study(tmp_path, 2, {"net": {0: [0.90, 0.940], 1: [0.90, 0.942]}})
    write_study(tmp_path, 36, {"net": {0: [0.90, 0.951]}}, name="best-search-e{epochs}")
    cells = [[c.strip() for c in line.strip("|").split("|")]
             for line in records.table(tmp_path, target=95.0, prefix="best-search")
             .splitlines()[2:]]
    assert [c[:4] for c in cells] == [["36", "net", "1", "95.10 % (one seed)"]]
    assert cells[0][7] == "2"
    with pytest.raises(SystemExit, match=r"has no other-e<N> folders"):
        records.table(tmp_path, prefix="other")


def test_across_lengths_pairs_every_row_with_the_one_leader(records, tmp_path):
    write_study(tmp_path, 2, {"net": {0: [0.90, 0.940], 1: [0.90, 0.942]}})
    write_study(tmp_path, 3, {"net": {0: [0.90, 0.94, 0.946], 1: [0.90, 0.94, 0.950]}})
    lines = records.table(tmp_path, across_lengths=True).splitlines()
    assert "behind the leader" in lines[0]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [(c[0], c[1], c[5]) for c in cells] == [("3", "net", "-"),
                                                   ("2", "net", "-0.70 ± 0.10")]


def test_a_missing_results_folder_is_a_clear_error(records, tmp_path):
    with pytest.raises(SystemExit, match=r"RESULTS_DIR: .*missing.* is not a folder"):
        records.table(tmp_path / "missing")


def test_a_row_still_training_is_paired_with_a_finished_leader(records, tmp_path):
    write_study(tmp_path, 2, {"net": {0: [0.90, 0.940], 1: [0.90, 0.942]}})
    write_study(tmp_path, 2, {"net": {0: [0.90, 0.950]}}, name="record-search-e{epochs}-tta")
    cells = [[c.strip() for c in line.strip("|").split("|")]
             for line in records.table(tmp_path).splitlines()[2:]]
    assert [(c[1], c[5]) for c in cells] == [("net + tta", "+1.00 (1 seed)"), ("net", "-")]
