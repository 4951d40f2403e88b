"""The report's comparison of a study's ranking with another study's (config key
``compare_with``): the table, Spearman's rho with its interval and exact test, and what it says
when there is nothing to compare."""

import csv
import json

import pytest

from jaxconv import experiment
from jaxconv.cli import main
from tests.experiment.test_experiment import write_config


def _study(folder, means):
    """A finished study folder without a config: one result.json per variant and seed."""
    for variant, accs in means.items():
        for seed, acc in enumerate(accs):
            run = folder / variant / f"seed-{seed}"
            run.mkdir(parents=True)
            (run / "result.json").write_text(json.dumps({
                "variant": variant, "seed": seed, "params": 1000, "macs": 2000,
                "xla_flops": 4000, "train_time_s": 1.0, "images_per_second": 10.0,
                "history": [{"test_accuracy": acc}]}))
    return folder


def _against(here, other):
    return experiment.report.ranking_against(experiment.report.results(here), other)


def test_the_ranking_beside_another_studys(tmp_path):
    """Study 1 ranks a, b, c, d; this one a, c, b, d (b and c swapped): rho = 1 - 6 * 2 /
    (4 * 15) = 0.8 over the four shared variants, exact p 8 / 24 (the orderings with
    |rho| >= 0.8: the identity and its three neighbour swaps, and their reversals); e is in the
    other study only and leaves the ranks of the rest as they are among the shared ones."""
    other = _study(tmp_path / "study1", {"a": [0.93, 0.94], "b": [0.92, 0.92],
                                         "c": [0.91, 0.91], "d": [0.90, 0.90],
                                         "e": [0.95, 0.95]})
    here = _study(tmp_path / "study3", {"a": [0.95, 0.95, 0.96], "b": [0.93, 0.93, 0.93],
                                        "c": [0.94, 0.94, 0.94], "d": [0.92, 0.92, 0.92]})
    lines = _against(here, other)
    rows = [line.strip("|").split(" | ") for line in lines[0].splitlines()[2:]]
    assert [r[0].strip() for r in rows] == ["a", "c", "b", "d"]
    assert [c.strip() for c in rows[0]] == ["a", "95.33 %", "3", "1", "93.50 %", "2", "1", "+0"]
    assert [c.strip() for c in rows[1][1:]] == ["94.00 %", "3", "2", "91.00 %", "2", "3", "+1"]
    assert [c.strip() for c in rows[2][1:]] == ["93.00 %", "3", "3", "92.00 %", "2", "2", "-1"]
    assert "over the 4 shared variants" in lines[2] and "rho = 0.80;" in lines[2]
    assert "p of the test of no association = 0.3333 (exact" in lines[2]
    assert "In one study only, left out: e." in lines


def test_what_the_comparison_says_without_a_ranking_to_compare(tmp_path):
    here = _study(tmp_path / "here", {"a": [0.9], "b": [0.8], "c": [0.7]})
    missing = _against(here, tmp_path / "nowhere")
    assert "holds no finished runs to compare with" in missing[0]
    one = _against(here, _study(tmp_path / "one", {"a": [0.5], "z": [0.4]}))
    assert "shares 1 variant(s) with this study: no ranking to compare." in one[0]
    tied = _against(here, _study(tmp_path / "tied", {"a": [0.5], "b": [0.5], "c": [0.5]}))
    assert "undefined (one study's means all tie)" in tied[2]
    same = _against(here, _study(tmp_path / "same", {"a": [0.6], "b": [0.5], "c": [0.4]}))
    assert "rho = 1.00; approximate 95% interval none (under four variants)" in same[2]
    assert "= 0.3333 (exact" in same[2]
    two = _against(here, _study(tmp_path / "two", {"a": [0.6], "b": [0.5]}))
    assert "over the 2 shared variants" in two[2] and "rho = 1.00;" in two[2]
    assert "p of the test of no association = undefined (under three variants)." in two[2]


def test_compare_with_adds_the_ranking_to_a_finished_study_without_refusing_it(
        tmp_path, capsys):
    path = write_config(tmp_path)
    experiment.run(experiment.load(path), command="first", progress=False, log=lambda s: None)
    run_dir = tmp_path / "runs" / "tiny"
    other = _study(tmp_path / "earlier", {"basic": [0.5], "fire": [0.4]})
    # a report-only key: the finished study resumes under it, and again without it
    experiment.run(experiment.load(path, [f"compare_with={other}"]), command="second",
                   progress=False, log=lambda s: None)
    report = (run_dir / "report.md").read_text()
    assert f"## Against the ranking of {other}" in report
    assert "over the 2 shared variants" in report
    assert main(["report", str(run_dir)]) == 0
    assert f"## Against the ranking of {other}" in capsys.readouterr().out
    experiment.run(experiment.load(path), command="third", progress=False, log=lambda s: None)
    assert "## Against the ranking" not in (run_dir / "report.md").read_text()
    with pytest.raises(experiment.ConfigError, match="compare_with: 3 must be a non-empty path"):
        experiment.load(path, ["compare_with=3"])


def _record(val, test=None):
    return {"val_accuracy": val} | ({} if test is None else {"test_accuracy": test})


def test_runs_that_saw_the_test_set_once_draw_their_validation_curve():
    def run(seed, history):
        return {"variant": "a", "seed": seed, "params": 1, "macs": 1, "xla_flops": 1.0,
                "train_time_s": 1.0, "images_per_second": 1.0, "history": history}

    once = [run(0, [_record(0.80), _record(0.90), _record(0.85, test=0.84)]),
            run(1, [_record(0.70), _record(0.80), _record(0.75, test=0.76)])]
    [row] = experiment.report.aggregate(once)
    assert row.curve_of == "val" and row.curve == pytest.approx((0.75, 0.85, 0.80))
    assert row.best_epoch == 2 and row.test_acc_mean == pytest.approx(0.80)
    every = [run(0, [_record(0.80, 0.70), _record(0.90, 0.95)])]
    [row] = experiment.report.aggregate(every)
    assert row.curve_of == "test" and row.curve == pytest.approx((0.70, 0.95))
    no_split = [run(0, [{}, {"test_accuracy": 0.9}])]
    [row] = experiment.report.aggregate(no_split)
    assert row.best_epoch == 2 and row.curve[-1] == pytest.approx(0.9)


def test_a_study_without_a_split_that_sees_the_test_set_once_finishes_and_reports(tmp_path):
    path = write_config(tmp_path)
    assert main(["run", str(path), "--quiet", "--variant", "basic", "--set", "train.epochs=2",
                 "--set", "train.test_eval=end"]) == 0
    result = json.loads((tmp_path / "runs" / "tiny" / "basic" / "seed-0" / "result.json")
                        .read_text())
    assert ["test_accuracy" in h for h in result["history"]] == [False, True]
    assert result["best_epoch"] == 2
    assert "| basic |" in (tmp_path / "runs" / "tiny" / "report.md").read_text()


def _timed(variant, seed, load):
    return {"variant": variant, "seed": seed, "params": 1000, "macs": 2000, "xla_flops": 4000,
            "train_time_s": 100.0 + seed, "images_per_second": 10.0,
            "history": [{"test_accuracy": 0.9}], **({"cores": load} if load else {})}


def test_times_are_speed_figures_only_for_runs_that_had_their_cores_to_themselves():
    """A row gives its times only when none of its runs is known to have shared its cores or
    to have been resumed; every run's state is named."""
    report = experiment.report
    quiet = {"from_step": 0, "other_cpu_s": 0.4, "wall_s": 100.0, "core_count": 2,
             "quiet": True}
    shared = {**quiet, "other_cpu_s": 50.0, "quiet": False}
    resumed = {**quiet, "from_step": 400}
    found = [_timed("a", 0, quiet), _timed("a", 1, quiet), _timed("b", 0, quiet),
             _timed("b", 1, shared), _timed("c", 0, resumed), _timed("d", 0, None)]
    assert [report.clock(r) for r in found] == ["quiet", "quiet", "quiet", "shared", "resumed",
                                                "not recorded"]
    # a run from before schema 5 whose last process resumed it; a run of two processes, whose
    # process 0 watched only its own host
    older = {**_timed("e", 0, None), "segments": [{"from_step": 0}, {"from_step": 300}]}
    assert report.clock(older) == "resumed"
    assert report.clock({**_timed("f", 0, {**quiet, "processes": 2})}) == "not recorded"
    rows = report.aggregate(found)
    assert [(r.variant, r.clocks, r.timed) for r in rows] == [
        ("a", "quiet", True), ("b", "shared", False), ("c", "resumed", False),
        ("d", "not recorded", True)]
    cells = {line.split(" | ")[0].strip("| "): line.split(" | ")[4:6]
             for line in report.table(rows).splitlines()[2:]}
    assert cells == {"a": ["100.5", "10"], "b": ["shared", "shared"],
                     "c": ["resumed", "resumed"], "d": ["100.0", "10"]}
    notes = report.clock_notes(found)
    assert notes[0].startswith("- clocks: b/seed-1 shared their cores")
    assert notes[1].startswith("- clocks: c/seed-0 were resumed")
    assert notes[2].startswith("- clocks: d/seed-0 did not record")
    assert notes[3] == "- clocks: a/seed-0, a/seed-1, b/seed-0 had their cores to themselves"
    assert report.clock_notes(found[:2]) == [
        "- clocks: every run had its cores to itself (other work under 2% of their capacity "
        "while it trained)"]
    assert report.clock_notes(found[5:]) == [
        "- clocks: no run recorded whether other work shared its cores (result.json before "
        "schema 5, no /proc/stat, or several processes), so the times are speed figures only "
        "if the machine was otherwise known to be quiet"]


def test_the_results_file_and_time_plot_leave_out_clocks_that_are_not_speed_figures(
        tmp_path, monkeypatch):
    quiet = {"from_step": 0, "other_cpu_s": 0.4, "wall_s": 100.0, "core_count": 2,
             "quiet": True}
    for record in (_timed("a", 0, quiet), _timed("b", 0, {**quiet, "quiet": False})):
        run = tmp_path / record["variant"] / "seed-0"
        run.mkdir(parents=True)
        (run / "result.json").write_text(json.dumps(record))
    plot, drawn = experiment.report._plot, {}

    def spy(rows, x_of, xlabel, path, log_x, note=""):
        drawn[path.name] = ([r.variant for r in rows], note)
        plot(rows, x_of, xlabel, path, log_x, note)

    monkeypatch.setattr(experiment.report, "_plot", spy)
    experiment.report.build(tmp_path)
    assert drawn["accuracy_vs_params.png"] == (["a", "b"], "")
    assert drawn["accuracy_vs_time.png"] == (
        ["a"], "left out, their clocks not speed figures: b")
    with (tmp_path / "results.csv").open() as f:
        rows = {r["variant"]: r for r in csv.DictReader(f)}
    assert (rows["a"]["train_time_s"], rows["a"]["clocks"]) == ("100.0", "quiet")
    assert (rows["b"]["train_time_s"], rows["b"]["images_per_second"], rows["b"]["clocks"]) \
        == ("", "", "shared")
    assert "- clocks: b/seed-0 shared their cores" in (tmp_path / "report.md").read_text()
