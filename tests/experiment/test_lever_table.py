"""`experiments/lever_table.py`: trials paired with the baseline by seed, Holm's adjustment, the
two-standard-error rule, epochs to 94% from ``metrics.jsonl``, and no test accuracy shown."""

import importlib.util
import json
import math
import pathlib
import sys

import pytest
import yaml
from scipy import stats

#: A one-off study script's test: in `make test` and CI, skipped by ``-m "not experiments"``.
pytestmark = pytest.mark.experiments

SCRIPT = pathlib.Path(__file__).parents[2] / "experiments" / "lever_table.py"
TEST_ACCURACY = 0.8765  # written into every epoch record; must never reach the table
PROVENANCE = {"commit": "a714a08", "cpu": "AMD EPYC 7B13 (avx2, 2 cores)",
              "versions": "Python 3.11.9, jax 0.10.0, jaxlib 0.10.0, flax 0.12.0, optax 0.2.5",
              "backend": "1 cpu device(s)", "date": "2026-12-01 10:00 UTC"}
CHOICES = {"option_set": "default", "requested": "default", "policy_version": 1}


@pytest.fixture(scope="module")
def lever_table():
    spec = importlib.util.spec_from_file_location("lever_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # dataclasses resolve the script's annotations through sys.modules
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _write_trial(root, name, train, curves, diverged=(), origin=None):
    """A finished trial folder: ``curves`` maps seed -> validation accuracy per epoch (the
    training clock advances 10 s per epoch); seeds in ``diverged`` are recorded as diverged;
    ``origin`` maps seed -> provenance keys (and ``choices``) that differ from the defaults."""
    origin = origin or {}
    folder = root / f"levers-{name}"
    folder.mkdir()
    seeds = sorted(set(curves) | set(diverged))
    config = {"name": f"levers-{name}", "output_dir": str(root),
              "data": {"name": "fashion_mnist"},
              "train": {"epochs": 3, "ema_decay": 0.0, "label_smoothing": 0.1, **train},
              "variants": [{"name": "net", "model": {"preset": "bottleneck-0.3m"}}],
              "seeds": seeds}
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    for seed in seeds:
        run = folder / "net" / f"seed-{seed}"
        run.mkdir(parents=True)
        history = [{"kind": "epoch", "step": 100 * (e + 1), "epoch": e + 1,
                    "val_accuracy": acc, "test_accuracy": TEST_ACCURACY,
                    "train_time_s": 10.0 * (e + 1)}
                   for e, acc in enumerate(curves.get(seed, [0.5]))]
        train_lines = [{"kind": "train", "step": 10, "epoch": 1, "loss": 2.0, "accuracy": 0.3}]
        (run / "metrics.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in [*train_lines, *history]))
        changed = dict(origin.get(seed, {}))
        choices = changed.pop("choices", CHOICES)
        (run / "result.json").write_text(json.dumps({
            "variant": "net", "seed": seed, "history": history,
            "status": "diverged" if seed in diverged else "finished",
            "train_time_s": history[-1]["train_time_s"],
            "provenance": {**PROVENANCE, **changed}, "choices": choices}))


def _rows(text):
    """The table's body as {trial: {column: cell}}."""
    lines = text.split("\n\n")[0].splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    return {row[0]: dict(zip(header, row)) for row in rows}


@pytest.fixture
def results(tmp_path):
    _write_trial(tmp_path, "baseline", {}, {0: [0.90, 0.930], 1: [0.91, 0.935],
                                            2: [0.92, 0.945]})
    # +1.0, +1.5, +2.0 points on seeds 0-2: a steady gain
    _write_trial(tmp_path, "ema", {"ema_decay": 0.995},
                 {0: [0.93, 0.940], 1: [0.94, 0.950], 2: [0.95, 0.965]})
    # seed 2 diverged: paired over seeds 0 and 1 only
    _write_trial(tmp_path, "smoothing-0", {"label_smoothing": 0.0},
                 {0: [0.90, 0.920], 1: [0.91, 0.940]}, diverged=[2])
    return tmp_path


def test_pairs_by_seed_and_leaves_out_unpaired_seeds(lever_table):
    result = lever_table.paired({0: 0.92, 1: 0.935, 3: 0.99}, {0: 0.91, 1: 0.915, 2: 0.93})
    assert result.seeds == (0, 1)
    assert result.mean_difference == pytest.approx(0.015)
    # differences 0.01 and 0.02: std 0.00707, over sqrt(2)
    assert result.standard_error == pytest.approx(0.005)
    t = 0.015 / 0.005
    assert result.p_value == pytest.approx(2 * stats.t.sf(t, 1))


def test_pairing_is_by_seed_not_by_position(lever_table):
    # the same accuracies, the baseline's seeds listed in another order
    forward = lever_table.paired({0: 0.90, 1: 0.95, 2: 0.93}, {0: 0.89, 1: 0.94, 2: 0.925})
    shuffled = lever_table.paired({2: 0.93, 0: 0.90, 1: 0.95}, {1: 0.94, 2: 0.925, 0: 0.89})
    assert shuffled == forward
    assert forward.mean_difference == pytest.approx((0.01 + 0.01 + 0.005) / 3)


def test_one_paired_seed_has_no_error_or_test(lever_table):
    result = lever_table.paired({0: 0.95}, {0: 0.90, 1: 0.91})
    assert result.mean_difference == pytest.approx(0.05)
    assert math.isnan(result.standard_error) and math.isnan(result.p_value)
    assert not lever_table.kept(result)


def test_holm_against_a_hand_computed_example(lever_table):
    # sorted: 0.005 x4 = 0.02; 0.01 x3 = 0.03; 0.03 x2 = 0.06; 0.04 x1 = 0.04 -> max(0.06, 0.04)
    adjusted = lever_table.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_skips_missing_tests(lever_table):
    adjusted = lever_table.holm([0.5, math.nan, 0.6])
    assert adjusted[0] == pytest.approx(1.0) and adjusted[2] == pytest.approx(1.0)
    assert math.isnan(adjusted[1])
    # one finite p among NaNs is its own family of one
    lone = lever_table.holm([math.nan, 0.2])
    assert math.isnan(lone[0]) and lone[1] == pytest.approx(0.2)


def test_holm_refuses_a_value_that_is_not_a_probability(lever_table):
    with pytest.raises(ValueError, match=r"p_values\[1\]: 1.5 is not a probability"):
        lever_table.holm([0.1, 1.5])


def test_kept_needs_a_gain_beyond_two_standard_errors(lever_table):
    paired = lever_table.Paired
    assert lever_table.kept(paired((0, 1, 2), 0.010, 0.004, 0.05))
    assert not lever_table.kept(paired((0, 1, 2), 0.008, 0.004, 0.05))  # exactly 2 SE
    assert not lever_table.kept(paired((0, 1, 2), 0.006, 0.004, 0.20))
    assert not lever_table.kept(paired((0, 1, 2), -0.010, 0.004, 0.05))  # a loss
    assert not lever_table.kept(paired((0, 1), 0.010, 0.004, 0.05))  # two seeds: not yet


def test_first_epoch_at_94_percent(lever_table):
    epochs = [{"epoch": 3, "step": 300, "val_accuracy": 0.95, "train_time_s": 30.0},
              {"epoch": 1, "step": 100, "val_accuracy": 0.90, "train_time_s": 10.0},
              {"epoch": 2, "step": 200, "val_accuracy": 0.94, "train_time_s": 20.5}]
    assert lever_table.first_reaching(epochs) == (2, 200)
    assert lever_table.first_reaching(epochs[1:2]) is None


def test_epoch_records_come_from_metrics_jsonl(lever_table, results):
    path = results / "levers-ema" / "net" / "seed-0" / "metrics.jsonl"
    records = lever_table.epoch_records(path)
    assert [r["epoch"] for r in records] == [1, 2]
    assert lever_table.epoch_records(path.with_name("missing.jsonl")) == []


def test_table_pairs_trials_with_the_baseline(lever_table, results):
    rows = _rows(lever_table.table(lever_table.trials(results)))
    assert list(rows) == ["baseline", "ema", "smoothing-0"]
    ema, smoothing = rows["ema"], rows["smoothing-0"]
    assert ema["change"] == "train.ema_decay=0.995"
    assert ema["seeds"] == "3"
    assert ema["paired difference ± SE"] == "+1.50 ± 0.29 points"
    assert ema["kept"] == "yes"
    assert smoothing["change"] == "train.label_smoothing=0.0"
    assert smoothing["seeds"] == "2 (1 diverged)"
    # seeds 0 and 1: -1.0 and +0.5 points
    assert smoothing["paired difference ± SE"] == "-0.25 ± 0.75 points"
    assert smoothing["kept"] == "no"
    p = [stats.ttest_rel([0.940, 0.950, 0.965], [0.930, 0.935, 0.945]).pvalue,
         stats.ttest_rel([0.920, 0.940], [0.930, 0.935]).pvalue]
    assert ema["p (paired t)"] == f"{p[0]:.3f}"
    assert ema["Holm p"] == f"{min(1.0, 2 * min(p)):.3f}"
    assert smoothing["Holm p"] == f"{max(min(1.0, 2 * min(p)), max(p)):.3f}"
    assert rows["baseline"]["val accuracy (mean ± std)"] == "93.67 ± 0.76 %"


def _write_step_seconds(root, seconds, choices=None, rounds=None):
    """A step_seconds.json as lever_step_seconds.py writes it: each trial timed under
    ``choices`` (the runs' own by default) in ``rounds`` (its median thrice by default)."""
    (root / "step_seconds.json").write_text(json.dumps({
        "cpu": "Intel Xeon (avx512, 2 cores)", "commit": "d661d99",
        "versions": PROVENANCE["versions"], "date": "2026-12-05 23:50 UTC", "rounds": 3,
        "load_average": {"before": [2.0, 2.0, 2.0], "after": [2.0, 2.0, 2.0]},
        "trials": {name: {"seconds_per_step": s, "rounds": (rounds or {}).get(name, [s] * 3),
                          "choices": (choices or {}).get(name, {**CHOICES, "later": "key"})}
                   for name, s in seconds.items()}}))


def test_table_reads_epochs_and_time_to_94_percent(lever_table, results):
    _write_step_seconds(results, {"baseline": 0.2, "ema": 0.25},
                        rounds={"ema": [0.24, 0.25, 0.264]})
    text = lever_table.table(lever_table.trials(results), lever_table.step_seconds(results))
    rows = _rows(text)
    # the baseline reaches 94% on seed 2 only, at epoch 2 (step 200, 0.2 s a step: 40 s); ema
    # on every seed, at epochs 2, 1 and 1 (steps 200, 100, 100 at 0.25 s: 33 s on average);
    # smoothing-0 on seed 1 at epoch 2, its seed 2 diverged, and its steps were not timed
    assert rows["baseline"]["epochs to 94% val"] == "2.0 (1/3 seeds)"
    assert rows["baseline"]["train s to 94% val"] == "40 (1/3 seeds)"
    assert rows["ema"]["epochs to 94% val"] == "1.3 (3/3 seeds)"
    assert rows["ema"]["train s to 94% val"] == "33 (3/3 seeds)"
    assert rows["smoothing-0"]["epochs to 94% val"] == "2.0 (1/2 seeds)"
    assert rows["smoothing-0"]["train s to 94% val"] == "not timed"
    footnote = text.splitlines()[-1]
    assert "timed alone in one sitting (Intel Xeon (avx512, 2 cores), commit d661d99, " \
        "2026-12-05 23:50 UTC" in footnote
    # ema's rounds: 0.264 / 0.24 = 1.10
    assert "spread by up to 10%" in footnote and "known to the epoch" in footnote


def test_steps_timed_under_other_formulations_give_no_time(lever_table, results):
    _write_step_seconds(results, {"baseline": 0.2, "ema": 0.25},
                        choices={"ema": {**CHOICES, "policy_version": 4}})
    rows = _rows(lever_table.table(lever_table.trials(results),
                                   lever_table.step_seconds(results)))
    assert rows["ema"]["train s to 94% val"] == "not timed (other formulations)"
    assert rows["baseline"]["train s to 94% val"] == "40 (1/3 seeds)"


def test_a_malformed_timing_file_is_named(lever_table, results):
    (results / "step_seconds.json").write_text(json.dumps({"cpu": "x", "trials": {
        "baseline": {"seconds_per_step": 0.2}}}))
    with pytest.raises(ValueError, match=r"step_seconds.json: KeyError\('choices'\); expected "
                                         r"the file experiments/lever_step_seconds.py writes"):
        lever_table.step_seconds(results)


def test_the_runs_own_clocks_never_give_the_time(lever_table, results):
    # the runs' train_time_s (10 s an epoch) shared the cores: without a quiet timing the
    # table gives none, and says why
    text = lever_table.table(lever_table.trials(results), lever_table.step_seconds(results))
    assert lever_table.step_seconds(results) is None
    rows = _rows(text)
    assert rows["ema"]["epochs to 94% val"] == "1.3 (3/3 seeds)"
    assert rows["ema"]["train s to 94% val"] == "not timed"
    assert text.splitlines()[-1].startswith("Train s to 94% val: not timed (no step_seconds.json")


def test_a_trial_that_never_reaches_94_percent(lever_table, results):
    _write_trial(results, "cutout", {"cutout_rate": 0.5, "cutout_size": 8},
                 {0: [0.90, 0.91], 1: [0.90, 0.92], 2: [0.91, 0.93]})
    row = _rows(lever_table.table(lever_table.trials(results)))["cutout"]
    assert row["change"] == "train.cutout_rate=0.5, train.cutout_size=8"
    assert row["epochs to 94% val"] == "not reached"
    assert row["train s to 94% val"] == "not reached"


def test_test_accuracy_never_appears(lever_table, results):
    text = lever_table.table(lever_table.trials(results))
    assert "test" not in text.lower()
    assert f"{100 * TEST_ACCURACY:.2f}" not in text
    assert f"{TEST_ACCURACY}" not in text


def test_results_without_a_baseline_are_refused(lever_table, tmp_path):
    _write_trial(tmp_path, "ema", {"ema_decay": 0.995}, {0: [0.93, 0.94]})
    with pytest.raises(ValueError, match="has no levers-baseline/ folder"):
        lever_table.trials(tmp_path)


def test_a_trial_with_a_diverged_seed_is_counted_and_never_kept(lever_table, results):
    # +2.0 and +2.5 points on seeds 0 and 1 would be kept; seed 2 diverged
    _write_trial(results, "whiten", {"stem_init": "whiten"},
                 {0: [0.95, 0.950], 1: [0.95, 0.960]}, diverged=[2])
    rows = _rows(lever_table.table(lever_table.trials(results)))
    assert rows["whiten"]["seeds"] == "2 (1 diverged)"
    assert rows["whiten"]["paired difference ± SE"] == "+2.25 ± 0.25 points"
    assert rows["whiten"]["kept"] == "no"
    assert rows["ema"]["seeds"] == "3" and rows["ema"]["kept"] == "yes"


def test_equal_differences_count_as_p_one_and_are_never_kept(lever_table, results):
    # +1.0 point on every seed: no spread, so no t-test
    _write_trial(results, "flip", {"flip": True},
                 {0: [0.94, 0.940], 1: [0.94, 0.945], 2: [0.95, 0.955]})
    equal = lever_table.paired({0: 0.94, 1: 0.945, 2: 0.955}, {0: 0.93, 1: 0.935, 2: 0.945})
    assert math.isnan(equal.p_value) and lever_table.family_p(equal) == 1.0
    assert not lever_table.kept(equal)
    rows = _rows(lever_table.table(lever_table.trials(results)))
    assert rows["flip"]["kept"] == "no"
    assert rows["flip"]["p (paired t)"] == "-" and rows["flip"]["Holm p"] == "1.000"
    # a family of three: ema's p is multiplied by 3, not 2
    p = [stats.ttest_rel([0.940, 0.950, 0.965], [0.930, 0.935, 0.945]).pvalue,
         stats.ttest_rel([0.920, 0.940], [0.930, 0.935]).pvalue]
    assert rows["ema"]["Holm p"] == f"{min(1.0, 3 * min(p)):.3f}"


@pytest.mark.parametrize(("key", "value", "shown"), [
    ("commit", "bbe6163", "bbe6163"),
    ("versions", "Python 3.11.9, jax 0.10.1, jaxlib 0.10.1, flax 0.12.0, optax 0.2.5", "0.10.1"),
    ("cpu", "Intel Xeon 8481C (avx512, 2 cores)", "Intel Xeon 8481C"),
    ("choices", {**CHOICES, "policy_version": 2}, '"policy_version": 2'),
])
def test_a_trial_run_on_other_code_or_machine_is_flagged_not_paired_silently(
        lever_table, results, key, value, shown):
    name = {"versions": "jaxlib"}.get(key, key)
    # the steady gain of ema, its seed 1 run elsewhere
    _write_trial(results, "ema-elsewhere", {"ema_decay": 0.99},
                 {0: [0.93, 0.940], 1: [0.94, 0.950], 2: [0.95, 0.965]},
                 origin={1: {key: value}})
    text = lever_table.table(lever_table.trials(results))
    rows = _rows(text)
    assert rows["ema-elsewhere"]["note"] == f"differs in {name}"
    assert rows["ema-elsewhere"]["kept"] == "no"
    assert rows["ema"]["note"] == "" and rows["ema"]["kept"] == "yes"
    (line,) = [line for line in text.splitlines() if line.startswith("- **ema-elsewhere**")]
    assert f"differ in {name} (baseline " in line and shown in line


AMD = {"commit": "a6a1056", "cpu": "AMD EPYC (avx512, 2 cores)"}


def _rerun_baseline(root, train=None):
    """The baseline again on other code and another CPU, ~1 point higher on seeds 0-2; its
    config adds a key later code records."""
    _write_trial(root, "baseline-2", {"test_eval": "epoch", **(train or {})},
                 {0: [0.91, 0.940], 1: [0.92, 0.945], 2: [0.93, 0.955]},
                 origin={k: AMD for k in range(3)})


def test_a_trial_pairs_with_the_baseline_rerun_on_its_own_code_and_machine(lever_table, results):
    _rerun_baseline(results)
    # the same +1.0/+1.5/+2.0 gain as ema, over the rerun, run where the rerun ran
    _write_trial(results, "cutout", {"test_eval": "epoch", "cutout_rate": 0.5},
                 {0: [0.93, 0.950], 1: [0.94, 0.960], 2: [0.95, 0.975]},
                 origin={k: AMD for k in range(3)})
    text = lever_table.table(lever_table.trials(results))
    rows = _rows(text)
    # the baselines, then each baseline's trials
    assert list(rows) == ["baseline", "baseline-2", "ema", "smoothing-0", "cutout"]
    assert rows["baseline-2"]["change"] == "(baseline)"
    assert rows["baseline-2"]["paired with"] == "-"
    assert rows["baseline-2"]["Holm p"] == "-"
    cutout = rows["cutout"]
    assert cutout["paired with"] == "baseline-2"
    # the change against its own baseline: the key the rerun adds is not the lever
    assert cutout["change"] == "train.cutout_rate=0.5"
    assert cutout["paired difference ± SE"] == "+1.50 ± 0.29 points"
    assert cutout["note"] == "" and cutout["kept"] == "yes"
    # the Xeon trials still pair with the first baseline
    assert rows["ema"]["paired with"] == "baseline"
    assert rows["ema"]["kept"] == "yes"
    # Holm's family is the three trials, not the baselines
    p = [stats.ttest_rel([0.950, 0.960, 0.975], [0.940, 0.945, 0.955]).pvalue,
         stats.ttest_rel([0.940, 0.950, 0.965], [0.930, 0.935, 0.945]).pvalue,
         stats.ttest_rel([0.920, 0.940], [0.930, 0.935]).pvalue]
    assert cutout["Holm p"] == f"{min(1.0, 3 * min(p)):.3f}"
    assert "- **baseline** ran on commit a714a08, CPU AMD EPYC 7B13 (avx2, 2 cores)" in text
    assert ("- **baseline-2** ran on commit a6a1056, CPU AMD EPYC (avx512, 2 cores), jaxlib "
            "0.10.0; its config adds train.test_eval=epoch.") in text


def test_a_trial_that_matches_no_baseline_pairs_with_the_closest_and_is_flagged(
        lever_table, results):
    _rerun_baseline(results)
    # run on the rerun's CPU from a third commit: it differs from the rerun in the commit
    # alone, from the first baseline in the commit and the CPU
    _write_trial(results, "cutout", {"test_eval": "epoch", "cutout_rate": 0.5},
                 {0: [0.93, 0.950], 1: [0.94, 0.960], 2: [0.95, 0.975]},
                 origin={k: {**AMD, "commit": "0e94f86"} for k in range(3)})
    rows = _rows(lever_table.table(lever_table.trials(results)))
    assert rows["cutout"]["paired with"] == "baseline-2"
    assert rows["cutout"]["note"] == "differs in commit"
    assert rows["cutout"]["kept"] == "no"


def _two_seed_rerun_and_cutout(lever_table, root, cutout_seeds_on_amd):
    """A rerun of the baseline with seeds 0 and 1 only, and a cutout trial of seeds 0-2 whose
    seeds ``range(cutout_seeds_on_amd)`` ran where the rerun did (the rest where the first
    baseline did); the table's rows."""
    _write_trial(root, "baseline-2", {}, {0: [0.91, 0.940], 1: [0.92, 0.945]},
                 origin={k: AMD for k in range(2)})
    _write_trial(root, "cutout", {"cutout_rate": 0.5},
                 {0: [0.93, 0.950], 1: [0.94, 0.960], 2: [0.95, 0.975]},
                 origin={k: AMD for k in range(cutout_seeds_on_amd)})
    return _rows(lever_table.table(lever_table.trials(root)))


def test_a_trial_whose_seeds_ran_different_programs_is_flagged(lever_table, results):
    # the trial's seeds 0 and 1 ran where the rerun did, its seed 2 where the first baseline did
    rows = _two_seed_rerun_and_cutout(lever_table, results, 2)
    assert "differs in commit" in rows["cutout"]["note"]
    assert rows["cutout"]["kept"] == "no"


def test_seeds_the_baseline_lacks_are_counted_as_unpaired(lever_table, results):
    rows = _two_seed_rerun_and_cutout(lever_table, results, 3)
    assert rows["cutout"]["paired with"] == "baseline-2"
    assert rows["cutout"]["seeds"] == "2 of 3 paired"
    assert rows["cutout"]["kept"] == "no"


def test_a_baseline_rerun_with_another_recipe_is_refused(lever_table, results):
    _rerun_baseline(results, {"label_smoothing": 0.0})
    with pytest.raises(ValueError, match=r"levers-baseline-2: train\.label_smoothing=0\.0 "
                                         r"where levers-baseline has train\.label_smoothing=0\.1"):
        lever_table.table(lever_table.trials(results))


def test_one_baseline_names_no_machine_line(lever_table, results):
    text = lever_table.table(lever_table.trials(results))
    assert " ran on commit " not in text
