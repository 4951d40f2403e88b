"""Reproducible rows: `jaxconv run CONFIG --variant V --seed N` reruns one run of a study into
its folder and reproduces its metrics; a study folder refuses runs from a tree with
uncommitted changes unless told, and its report names the runs that came from one."""

import json
import subprocess

import pytest
import yaml

from jaxconv import experiment
from jaxconv.cli import main
from jaxconv.experiment import provenance, runner
from jaxconv.train.logging import read_jsonl

TINY = {
    "name": "rows",
    "data": {"name": "synthetic"},
    "train": {"epochs": 1, "batch_size": 64, "eval_batch_size": 64, "learning_rate": 0.05,
              "compile_options": "default", "validation_fraction": 0.25},
    "model": {"layout": {"width": 8, "depth": 1, "stem_strides": 1, "block": "basic"}},
    "variants": [{"name": "a"}, {"name": "b", "model": {"layout": {"width": 4}}}],
    "seeds": [0, 1],
}
CLOCK = ("train_time_s", "images_per_second")


def write_config(folder, output_dir):
    path = folder / "rows.yaml"
    path.write_text(yaml.safe_dump(dict(TINY, output_dir=str(output_dir))))
    return path


def without_clock(folder):
    return [{k: v for k, v in r.items() if k not in CLOCK}
            for r in read_jsonl(folder / "metrics.jsonl")]


def test_one_row_trains_alone_into_the_study_folder_and_a_rerun_reproduces_it(tmp_path):
    path = write_config(tmp_path, tmp_path / "runs")
    assert main(["run", str(path), "--variant", "b", "--seed", "1", "--quiet"]) == 0
    run_dir = tmp_path / "runs" / "rows"
    done = sorted(p.parent.relative_to(run_dir).as_posix()
                  for p in run_dir.glob("*/seed-*/result.json"))
    assert done == ["b/seed-1"]
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert [v["name"] for v in saved["variants"]] == ["a", "b"] and saved["seeds"] == [0, 1]
    assert "--variant b --seed 1" in (run_dir / "command.txt").read_text()

    row = run_dir / "b" / "seed-1"
    first = without_clock(row)
    for name in ("result.json", "metrics.jsonl"):
        (row / name).unlink()
    for child in sorted((row / "checkpoints").rglob("*"), reverse=True):
        child.unlink() if child.is_file() else child.rmdir()
    assert main(["run", str(path), "--variant", "b", "--seed", "1", "--quiet"]) == 0
    assert without_clock(row) == first


def test_rows_that_are_not_in_the_config_are_refused_with_the_names(tmp_path):
    config = experiment.load(write_config(tmp_path, tmp_path / "runs"))
    with pytest.raises(experiment.ConfigError, match=r"--variant: 'c' is not a variant of "
                                                      r"rows; variants: a, b"):
        runner.rows(config, ["c"])
    with pytest.raises(experiment.ConfigError, match=r"--seed: 5 is not one of rows's seeds "
                                                      r"\[0, 1\]"):
        runner.rows(config, seeds=[5])
    variants, seeds = runner.rows(config, ["b"])
    assert [v.name for v in variants] == ["b"] and seeds == [0, 1]


def git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A git checkout with a committed file, an ignored ``runs/`` and a study folder."""
    root = tmp_path / "repo"
    (root / "experiments").mkdir(parents=True)
    (root / "code.py").write_text("x = 1\n")
    (root / ".gitignore").write_text("runs/\n")
    git(root, "init", "-q")
    git(root, "add", "code.py", ".gitignore")
    git(root, "commit", "-q", "-m", "start")
    return root


def test_the_commit_of_a_checkout_says_when_tracked_files_changed(repo):
    clean = provenance.git_commit(repo)
    assert not provenance.is_dirty(clean) and len(clean) >= 7
    (repo / "untracked.txt").write_text("not tracked\n")
    assert provenance.git_commit(repo) == clean
    (repo / "code.py").write_text("x = 2\n")
    assert provenance.git_commit(repo) == clean + "+dirty"


def test_a_committed_studys_own_files_changing_is_not_a_dirty_tree(repo):
    """Resuming or extending a committed study rewrites its report and command log, and
    rerunning a row removes its result.json: none of that is code."""
    study = repo / "experiments" / "results" / "study"
    (study / "v" / "seed-0").mkdir(parents=True)
    for name in ("report.md", "command.txt", "v/seed-0/result.json"):
        (study / name).write_text("committed\n")
    git(repo, "add", "experiments")
    git(repo, "commit", "-q", "-m", "a study")
    clean = provenance.git_commit(repo)
    (study / "report.md").write_text("rebuilt\n")
    (study / "v" / "seed-0" / "result.json").unlink()
    assert provenance.git_commit(repo) == clean
    (repo / "code.py").write_text("x = 3\n")
    assert provenance.git_commit(repo) == clean + "+dirty"


def test_only_folders_whose_files_git_would_keep_are_studies(repo, tmp_path):
    assert provenance.committed_folder(repo / "experiments" / "study")
    assert not provenance.committed_folder(repo / "runs" / "quickstart")
    assert not provenance.committed_folder(tmp_path / "elsewhere")


def test_a_study_refuses_a_dirty_tree_unless_allowed_and_its_report_says_so(
        repo, tmp_path, monkeypatch, capsys):
    path = write_config(tmp_path, repo / "experiments")
    dirty = provenance.git_commit(repo) + "+dirty"
    monkeypatch.setattr(provenance, "git_commit", lambda checkout=None: dirty)
    assert main(["run", str(path), "--variant", "a", "--seed", "0", "--quiet"]) == 2
    assert "uncommitted changes" in capsys.readouterr().err
    assert not (repo / "experiments" / "rows" / "a").exists()
    # outside a study folder a dirty tree trains as before
    provenance.check_clean(repo / "runs" / "rows", dirty)
    assert main(["run", str(path), "--variant", "a", "--seed", "0", "--quiet",
                 "--allow-dirty"]) == 0
    record = json.loads((repo / "experiments/rows/a/seed-0/result.json").read_text())
    assert record["provenance"]["commit"] == dirty
    report = (repo / "experiments" / "rows" / "report.md").read_text()
    assert "**uncommitted changes: a/seed-0 trained from a tree with uncommitted" in report
