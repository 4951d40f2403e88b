"""`experiments/retention_sweep.py` keeps what it cannot measure again: checkpoints stay on the
machine that trained a run, so a later machine adding seeds must not drop earlier rows."""

import csv
import io
import json

import pytest
import yaml

from tests.experiment import scripts

#: A one-off study script's test: in `make test` and CI, skipped by ``-m "not experiments"``.
pytestmark = pytest.mark.experiments



@pytest.fixture(scope="module")
def sweep():
    return scripts.load("retention_sweep")


def _row(variant, seed, state, images, retained):
    return {"variant": variant, "ratio": 0.5, "seed": seed, "state": state, "images": images,
            "path": "blocks.0.reduce.conv", "in_channels": 16, "out_channels": 8,
            "retained": retained, "optimum": 0.9, "random": 0.5, "effective_rank": 3.0}


@pytest.fixture
def run_dir(tmp_path, sweep):
    """A width sweep whose runs finished on another machine: result.json files, no
    checkpoints, and the retention.csv measured there (ratio 1 squeezes nothing)."""
    config = {"variants": [
        {"name": "ratio-1", "model": {"stages": [{"block": "bottleneck", "width": 16,
                                                  "options": {"ratio": 1}}]}},
        {"name": "ratio-0.5", "model": {"stages": [{"block": "bottleneck", "width": 16,
                                                    "options": {"ratio": 0.5}}]}}],
        "seeds": [0, 1]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    for name in ("ratio-1", "ratio-0.5"):
        for seed in (0, 1):
            folder = tmp_path / name / f"seed-{seed}"
            folder.mkdir(parents=True)
            (folder / "result.json").write_text(json.dumps({"status": "finished"}))
    rows = [_row("ratio-0.5", 0, "trained", 2000, 0.75),
            _row("ratio-0.5", 0, "initial", 2000, 0.95)]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=sweep.FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (tmp_path / "retention.csv").write_text(text.getvalue())
    return tmp_path


def test_runs_measured_elsewhere_keep_their_rows(run_dir, sweep):
    before = (run_dir / "retention.csv").read_text()
    sweep.main([str(run_dir), "--images", "2000"])
    assert (run_dir / "retention.csv").read_text() == before
    kept = sweep.read_rows(run_dir / "retention.csv")
    assert [(r["seed"], r["state"], r["retained"]) for r in kept] == [
        (0, "trained", 0.75), (0, "initial", 0.95)]
    md = (run_dir / "retention.md").read_text()
    assert "| ratio-0.5 | trained | 1 | 1 | 16 -> 8 | 0.750 | 0.900 | 0.500 | +0.250 |" in md
    assert "Kept from an earlier run of the script" in md and "ratio-0.5 seed 0" in md
    # seed 1 was never measured anywhere; ratio 1 has no squeezing 1x1 to measure
    assert "Not measured: ratio-0.5 seed 1 (checkpoints on another machine)." in md
    assert "ratio-1 seed" not in md
    assert (run_dir / "retention.png").stat().st_size > 0


def test_rows_over_another_image_count_are_not_mixed_in(run_dir, sweep, capsys):
    before = (run_dir / "retention.csv").read_text()
    with pytest.raises(SystemExit):
        sweep.main([str(run_dir), "--images", "500"])
    assert "no earlier retention.csv measured one over 500 images" in capsys.readouterr().err
    assert (run_dir / "retention.csv").read_text() == before


def test_merge_names_why_a_run_is_left_out(sweep):
    earlier = [_row("a", 0, "trained", 1000, 0.5)]
    rows, left_out, kept = sweep.merge(
        [], [("a", 0, sweep.ELSEWHERE), ("b", 2, "diverged")], earlier, 2000)
    assert rows == [] and kept == []
    assert left_out == ["a seed 0 (checkpoints on another machine; measured earlier over 1000 "
                        "images)", "b seed 2 (diverged)"]


def test_summary_gives_the_spread_over_seeds_of_what_beats_random(sweep):
    rows = [_row("a", 0, "trained", 2000, 0.6), _row("a", 1, "trained", 2000, 0.8),
            {**_row("a", 1, "trained", 2000, 0.8), "path": "blocks.1.reduce.conv"}]
    (t,) = sweep.summary(rows)
    # seed 0 keeps 0.1 more than random, seed 1 0.3 on both layers: mean 0.2, std sqrt(0.02)
    assert t["seeds"] == 2 and t["layers"] == 2
    assert t["margin"] == pytest.approx(0.2) and t["margin_std"] == pytest.approx(0.02 ** 0.5)
    assert "| +0.200 ± 0.141 |" in sweep.markdown([t], [], 2000)


def test_a_study_of_several_designs_measures_its_bottleneck_variants_alone(sweep):
    def variant(block, **options):
        return {"name": block, "model": {"stages": [{"block": block, "width": 16,
                                                     "options": options}] * 2}}

    assert sweep._ratio(variant("basic")) is None
    assert sweep._ratio(variant("inverted_residual", expansion=6)) is None
    # a preset's resolved stages leave the ratio unset: the block's default, ResNet's 1/4
    assert sweep._ratio(variant("bottleneck")) == sweep.DEFAULT_RATIO == 0.25
    assert sweep._ratio(variant("bottleneck", ratio=0.5)) == 0.5
    mixed = variant("bottleneck")
    mixed["model"]["stages"] = [{"block": "bottleneck", "options": {"ratio": 0.5}},
                                {"block": "bottleneck", "options": {}}]
    with pytest.raises(ValueError, match=r"expected one reduction ratio in every stage"):
        sweep._ratio(mixed)
