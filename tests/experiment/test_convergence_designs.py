"""`experiments/convergence_designs.py`: Study 4's designs, chosen on validation accuracy over
every seed of Study 3, never on test accuracy."""

import json

import pytest
import yaml

from tests.experiment import scripts

pytestmark = pytest.mark.experiments


@pytest.fixture(scope="module")
def rule():
    return scripts.load("convergence_designs")


def write_study(folder, runs, seeds=(0, 1)):
    """``runs`` maps design -> {seed: (validation, test)}; a None accuracy is a diverged run."""
    folder.mkdir(exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "name": "study", "variants": [{"name": n, "model": {"preset": f"{n}-0.3m"}}
                                      for n in runs], "seeds": list(seeds)}))
    for name, by_seed in runs.items():
        for seed, (val, test) in by_seed.items():
            run = folder / name / f"seed-{seed}"
            run.mkdir(parents=True)
            history = [{"kind": "epoch", "epoch": 1, "val_accuracy": val,
                        "test_accuracy": test}]
            (run / "result.json").write_text(json.dumps({
                "variant": name, "seed": seed, "history": history,
                "status": "finished" if val is not None else "diverged"}))
    return folder


def test_designs_are_ranked_on_validation_never_on_test(rule, tmp_path):
    # "c" has the best test accuracy and the worst validation accuracy
    study = write_study(tmp_path / "s", {
        "a": {0: (0.93, 0.90), 1: (0.94, 0.90)},
        "b": {0: (0.95, 0.90), 1: (0.95, 0.90)},
        "c": {0: (0.90, 0.99), 1: (0.91, 0.99)},
        "bottleneck": {0: (0.92, 0.90), 1: (0.92, 0.90)}})
    text = rule.text(rule.designs(study), top=2, extra=["bottleneck"])
    assert text.splitlines()[-1] == "Chosen: b, a, bottleneck."
    assert "99" not in text
    # a (93.5) against c (90.5), the best design left out (the bottleneck is chosen anyway):
    # +3.0 points on both seeds
    assert "The cut: a (chosen) against c (the best left out), paired over 2 seeds: " \
           "+3.00 ± 0.00 points" in text


def test_a_design_with_no_finished_seed_ranks_last(rule, tmp_path):
    study = write_study(tmp_path / "s", {"x": {0: (None, 0.9), 1: (None, 0.9)},
                                         "y": {0: (0.90, 0.9), 1: (None, 0.9)},
                                         "z": {0: (0.95, 0.9), 1: (0.95, 0.9)}})
    ranked = rule.ranking(rule.designs(study))
    assert [d.name for d in ranked] == ["z", "y", "x"]
    assert "| 3 | x | - | 0 | 2 |" in rule.text(rule.designs(study), 1, [])


def test_the_extra_design_is_not_repeated_when_chosen(rule, tmp_path):
    study = write_study(tmp_path / "s", {"a": {0: (0.90, 0.9), 1: (0.90, 0.9)},
                                         "bottleneck": {0: (0.95, 0.9), 1: (0.95, 0.9)}})
    assert rule.chosen(rule.ranking(rule.designs(study)), 1, ["bottleneck"]) == ["bottleneck"]


def test_a_partial_study_cannot_choose(rule, tmp_path):
    study = write_study(tmp_path / "s", {"a": {0: (0.93, 0.9), 1: (0.94, 0.9)},
                                         "b": {0: (0.95, 0.9)}})
    with pytest.raises(ValueError,
                       match=r"1 of 4 runs have neither finished nor diverged \(b/seed-1\)"):
        rule.designs(study)


def test_a_design_with_a_diverged_seed_ranks_last(rule, tmp_path):
    study = write_study(tmp_path / "s", {"a": {0: (0.99, 0.9), 1: (None, 0.9)},
                                         "b": {0: (0.90, 0.9), 1: (0.90, 0.9)}})
    ranked = rule.ranking(rule.designs(study))
    assert [d.name for d in ranked] == ["b", "a"]
    assert ranked[1].diverged == (1,)


def test_unknown_names_and_bad_counts_are_named(rule, tmp_path):
    study = write_study(tmp_path / "s", {"a": {0: (0.9, 0.9), 1: (0.9, 0.9)}})
    ranked = rule.ranking(rule.designs(study))
    with pytest.raises(ValueError, match="--with: resnet not a design of the study"):
        rule.chosen(ranked, 1, ["resnet"])
    with pytest.raises(ValueError, match="--top: 2 must be between 1 and the study's 1"):
        rule.chosen(ranked, 2, [])
    with pytest.raises(ValueError, match="--top: -20 must be between 1"):
        rule.text(rule.designs(study), -20, [])
    with pytest.raises(ValueError, match=r"has no config\.yaml"):
        rule.designs(tmp_path / "empty")
