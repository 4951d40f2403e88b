"""`experiments/onednn_parity.py`: pairs of runs with and without the extension, compared
design by design; a missing, unfinished, unpaired or wrongly trained run fails the check
instead of passing it by having nothing to compare; the control pairs are set beside."""

import json

import pytest

from tests.experiment import scripts

#: A one-off study script's test: in `make test` and CI, skipped by ``-m "not experiments"``.
pytestmark = pytest.mark.experiments

TUNED = {"ynnpack_flag": "-individual_convolution,-individual_dot", "option_set": "tuned"}
CONTROL = {"ynnpack_flag": "", "option_set": "default"}


@pytest.fixture(scope="module")
def parity():
    return scripts.load("onednn_parity")


def write_run(folder, study, variant, seed, accuracy, native, status="finished", version=3,
              batch_norm="lax", commit="24a8801", **choices):
    run = folder / study / variant / f"seed-{seed}"
    run.mkdir(parents=True)
    history = [{"epoch": 1, "test_accuracy": accuracy}] if status == "finished" else []
    run.joinpath("result.json").write_text(json.dumps({
        "variant": variant, "seed": seed, "status": status, "history": history,
        "provenance": {"commit": commit},
        "choices": {"native": {"available": native, "onednn": "3.2.0" if native else None},
                    "policy_version": version, "batch_norm": batch_norm,
                    **(choices or TUNED)}}))


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
    assert "Commits: 24a8801 (these runs); 24a8801 (lax)." in lines


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
    write_run(tmp_path, "bottlenecks-control", "basic", 0, 0.9090, False, **CONTROL)
    write_run(tmp_path, "bottlenecks-control", "fire", 0, 0.9105, False, **CONTROL)
    lines, ok = parity.table(tmp_path)
    assert ok, "the control does not decide the parity check"
    assert "## bottlenecks-control: 2 pairs" in lines
    assert "| basic | 0 | 90.90 % | 90.30 % | +0.60 | no |" in lines
    assert "| fire | 0 | 91.05 % | 91.00 % | +0.05 | yes |" in lines
    assert ("Spread, bottlenecks-native minus lax only: 2 pairs: mean -0.05, standard "
            "deviation 0.35, largest 0.30 points; 0 over 0.5; the mean's 90% interval -1.63 to "
            "+1.53 is not within +-0.5 (two one-sided tests at 5%).") in lines
    assert ("Spread, bottlenecks-control minus lax only: 2 pairs: mean +0.33, standard "
            "deviation 0.39, largest 0.60 points; 1 over 0.5; the mean's 90% interval -1.41 to "
            "+2.06 is not within +-0.5 (two one-sided tests at 5%).") in lines


@pytest.mark.parametrize("choices, why", [
    ({"ynnpack_flag": "", "option_set": "tuned"}, "same YNNPACK flag or compile options"),
    ({"ynnpack_flag": TUNED["ynnpack_flag"], "option_set": "default"},
     "same YNNPACK flag or compile options"),
])
def test_a_control_that_changed_only_one_thing_is_flagged_and_left_out(parity, tmp_path,
                                                                       choices, why):
    fill(tmp_path)
    write_run(tmp_path, "bottlenecks-control", "fire", 0, 0.9100, False, **choices)
    write_run(tmp_path, "bottlenecks-control", "basic", 0, 0.9030, False, **CONTROL)
    lines, _ = parity.table(tmp_path)
    assert any(line.startswith("| fire | 0 |") and why in line for line in lines)
    assert ("Spread, bottlenecks-control minus lax only: 1 pair(s) (1 more not trained as "
            "intended): too few for a spread.") in lines


def test_a_control_with_the_extension_is_flagged(parity, tmp_path):
    fill(tmp_path)
    write_run(tmp_path, "bottlenecks-control", "fire", 0, 0.9100, True, **CONTROL)
    lines, _ = parity.table(tmp_path)
    assert any(line.startswith("| fire | 0 |") and "the extension was there" in line
               for line in lines)


def test_each_policy_versions_native_runs_are_compared_with_the_one_set_of_lax_runs(
        parity, tmp_path):
    fill(tmp_path)
    for variant, accuracy in (("basic", 0.9010), ("fire", 0.9140)):
        write_run(tmp_path, "bottlenecks-native-v4", variant, 0, accuracy, True, version=4,
                  batch_norm="native channel sums", commit="ed0f5d5")
    (tmp_path / "bottlenecks-native-old").mkdir()
    lines, ok = parity.table(tmp_path)
    headers = [line for line in lines if line.startswith("## bottlenecks")]
    assert headers == ["## bottlenecks-native: 2 pairs", "## bottlenecks-native-v4: 2 pairs"]
    assert ok and "Commits: ed0f5d5 (these runs); 24a8801 (lax)." in lines


@pytest.mark.parametrize("version, batch_norm, why", [
    (3, "native channel sums", "native run at policy version 3, not 4"),
    (4, "lax", "BatchNorm lax, not the native sums"),
])
def test_a_native_run_of_another_version_or_without_native_sums_fails(
        parity, tmp_path, version, batch_norm, why):
    fill(tmp_path)
    for variant, accuracy in (("basic", 0.9010), ("fire", 0.9140)):
        write_run(tmp_path, "bottlenecks-native-v4", variant, 0, accuracy, True,
                  version=version, batch_norm=batch_norm)
    lines, ok = parity.table(tmp_path)
    assert not ok and any(line.startswith("| fire | 0 |") and why in line for line in lines)


def test_the_spread_counts_pairs_with_an_unfinished_run_apart(parity):
    assert parity.spread([0.1, float("nan"), 0.3]) == (
        "2 pairs (1 more with a run that did not finish): mean +0.20, standard deviation 0.14, "
        "largest 0.30 points; 0 over 0.5; the mean's 90% interval -0.43 to +0.83 is not within "
        "+-0.5 (two one-sided tests at 5%)")
    many = [0.1, -0.2, 0.3, 0.0, -0.1, 0.2, 0.1, -0.3]
    assert parity.spread(many).endswith(
        "the mean's 90% interval -0.12 to +0.15 is within +-0.5 (two one-sided tests at 5%)")
    assert parity.spread([float("nan")], flagged=2) == (
        "0 pair(s) (1 more with a run that did not finish; 2 more not trained as intended): "
        "too few for a spread")
