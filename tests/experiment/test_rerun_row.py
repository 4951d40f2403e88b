"""`experiments/rerun_row.py`: a committed row's command read back, a dirty row refused, and
two metrics files compared field by field with only the clock readings left out."""

import json
import subprocess

import pytest

from tests.experiment import scripts

#: A one-off study script's test: in `make test` and CI, skipped by ``-m "not experiments"``.
pytestmark = pytest.mark.experiments



@pytest.fixture(scope="module")
def rerun_row():
    return scripts.load("rerun_row")


def write_row(folder, commit, segments=()):
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({
        "variant": "fire", "seed": 0, "provenance": {"commit": commit},
        "segments": [{"from_step": step, "commit": c} for step, c in segments],
        "command": "XLA_FLAGS=--a=b GLIBC_TUNABLES=x=1 jaxconv run configs/s.yaml --quiet "
                   "--set 'seeds=[0, 1]'"}))
    return folder


def test_the_recorded_command_splits_into_environment_and_arguments(rerun_row, tmp_path):
    _, env, args = rerun_row.recorded_run(write_row(tmp_path / "row", "24a8801"))
    assert env == {"XLA_FLAGS": "--a=b", "GLIBC_TUNABLES": "x=1"}
    assert args == ["configs/s.yaml", "--quiet", "--set", "seeds=[0, 1]"]


def test_a_row_from_a_dirty_tree_is_refused(rerun_row, tmp_path):
    with pytest.raises(SystemExit, match=r"dirty tree \(24a8801\+dirty\)"):
        rerun_row.recorded_run(write_row(tmp_path / "row", "24a8801+dirty"))
    # finished from a clean tree, begun from a dirty one
    with pytest.raises(SystemExit, match=r"dirty tree \(1234567\+dirty\)"):
        rerun_row.recorded_run(write_row(tmp_path / "resumed", "24a8801",
                                         [(0, "1234567+dirty"), (40, "24a8801")]))


def test_metrics_differ_in_anything_but_the_clock(rerun_row):
    line = {"kind": "epoch", "val_accuracy": 0.9, "train_time_s": 10.0, "images_per_second": 5.0}
    same = dict(line, train_time_s=12.0, images_per_second=4.0)
    assert rerun_row.metric_differences([line], [same]) == []
    assert rerun_row.metric_differences([line], [dict(line, val_accuracy=0.91)]) == [
        "line 1: val_accuracy 0.9 -> 0.91"]
    assert rerun_row.metric_differences([line], [line, line]) == ["1 lines recorded, 2 rerun"]


def git_repo(path):
    """A one-commit repository at ``path``; its commit's hash."""
    path.mkdir(parents=True)
    for command in (["init", "-q"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                                     "--allow-empty", "-m", "x"]):
        subprocess.run(["git", "-C", str(path), *command], check=True)
    return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_a_workdir_at_another_commit_or_with_an_earlier_rerun_is_refused(rerun_row, tmp_path):
    commit = git_repo(tmp_path / "clone")
    with pytest.raises(SystemExit, match=f"is at {commit[:12]}, not the row's commit 24a8801"):
        rerun_row.workspace(tmp_path, "24a8801")
    assert rerun_row.workspace(tmp_path, commit[:7]) == (tmp_path / "clone", tmp_path / "runs")
    (tmp_path / "runs" / "study").mkdir(parents=True)
    with pytest.raises(SystemExit, match="holds an earlier rerun; remove it first"):
        rerun_row.workspace(tmp_path, commit[:7])
