"""`experiments/onednn_parity.py`: pairs of runs with and without the extension, compared
design by design; a missing, unfinished or unpaired run fails the check instead of passing it
by having nothing to compare."""

import json

import pytest

from tests.experiment import scripts

#: A one-off study script's test: in `make test` and CI, skipped by ``-m "not experiments"``.
pytestmark = pytest.mark.experiments



@pytest.fixture(scope="module")
def parity():
    return scripts.load("onednn_parity")


def write_run(folder, study, variant, seed, accuracy, native, status="finished",
              xla_flags="--xla_cpu_experimental_ynn_fusion_type=-individual_dot"):
    run = folder / study / variant / f"seed-{seed}"
    run.mkdir(parents=True)
    history = [{"epoch": 1, "test_accuracy": accuracy}] if status == "finished" else []
    run.joinpath("result.json").write_text(json.dumps({
        "variant": variant, "seed": seed, "status": status, "history": history,
        "choices": {"native": {"available": native, "onednn": "3.2.0" if native else None},
                    "xla_flags": xla_flags}}))


def fill(folder, lax_fire=0.9100, fire_status="finished"):
    for path, native in (("native", True), ("lax", False)):
        for study in ("bottlenecks", "quickstart"):
            write_run(folder, f"{study}-{path}", "basic", 0, 0.9000 if native else 0.9030,
                      native)
        write_run(folder, f"bottlenecks-{path}", "fire", 0, 0.9120 if native else lax_fire,
                  native, fire_status if not native else "finished")


def test_pairs_within_half_a_point_pass(parity, tmp_path):
    fill(tmp_path)
    lines, ok = parity.table(tmp_path)
    assert ok
    assert "| fire | 0 | 91.20 % | 91.00 % | +0.20 | yes |" in lines


def test_a_pair_apart_by_more_than_half_a_point_fails(parity, tmp_path):
    fill(tmp_path, lax_fire=0.9060)
    lines, ok = parity.table(tmp_path)
    assert not ok and "| fire | 0 | 91.20 % | 90.60 % | +0.60 | no |" in lines


def test_unfinished_unpaired_or_absent_runs_fail(parity, tmp_path):
    fill(tmp_path / "diverged", fire_status="diverged")
    assert not parity.table(tmp_path / "diverged")[1]
    fill(tmp_path / "unpaired")
    write_run(tmp_path / "unpaired", "bottlenecks-native", "nin", 0, 0.9, True)
    assert not parity.table(tmp_path / "unpaired")[1]
    assert not parity.table(tmp_path / "empty")[1]


def test_control_runs_are_set_beside_with_both_spreads(parity, tmp_path):
    fill(tmp_path)
    write_run(tmp_path, "bottlenecks-control", "basic", 0, 0.9090, False, xla_flags="")
    write_run(tmp_path, "bottlenecks-control", "fire", 0, 0.9105, False, xla_flags="")
    lines, ok = parity.table(tmp_path)
    assert ok, "the control does not decide the parity check"
    assert "| basic | 0 | 90.90 % | 90.30 % | +0.60 | no |" in lines
    assert "| fire | 0 | 91.05 % | 91.00 % | +0.05 | yes |" in lines
    assert ("Spread, bottlenecks-native minus lax only: 2 pairs: mean -0.05, standard "
            "deviation 0.35, largest 0.30 points; 0 over 0.5.") in lines
    assert ("Spread, lax under XLA's own flags minus lax only: 2 pairs: mean +0.33, standard "
            "deviation 0.39, largest 0.60 points; 1 over 0.5.") in lines


def test_a_control_that_changed_nothing_is_flagged(parity, tmp_path):
    fill(tmp_path)
    write_run(tmp_path, "bottlenecks-control", "fire", 0, 0.9100, False)
    lines, _ = parity.table(tmp_path)
    assert any(line.startswith("| fire | 0 |") and "not a control" in line for line in lines)


def test_each_policy_versions_native_runs_are_compared_with_the_one_set_of_lax_runs(
        parity, tmp_path):
    fill(tmp_path)
    write_run(tmp_path, "bottlenecks-native-v4", "basic", 0, 0.9010, True)
    write_run(tmp_path, "bottlenecks-native-v4", "fire", 0, 0.9170, True)
    lines, ok = parity.table(tmp_path)
    assert {"## bottlenecks-native: 2 pairs", "## bottlenecks-native-v4: 2 pairs"} <= set(lines)
    assert not ok and "| fire | 0 | 91.70 % | 91.00 % | +0.70 | no |" in lines


def test_the_spread_counts_pairs_with_an_unfinished_run_apart(parity):
    assert parity.spread([0.1, float("nan"), 0.3]) == (
        "2 pairs (1 more with a run that did not finish): mean +0.20, standard deviation 0.14, "
        "largest 0.30 points; 0 over 0.5")
    assert parity.spread([float("nan")]) == (
        "0 pair(s) (1 more with a run that did not finish): too few for a spread")
