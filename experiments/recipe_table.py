"""The recipe search's trials as one Markdown table, judged on validation accuracy.

    python experiments/recipe_table.py [RESULTS_DIR]

Reads ``<RESULTS_DIR>/recipe-*/`` (default ``experiments/results/fashion_mnist/recipe``): each
trial's ``config.yaml`` (what it changed against ``recipe-baseline``) and its finished
``result.json`` files. Test accuracy is not shown: the recipe is chosen without it.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys

import yaml

from jaxconv.experiment import report
from jaxconv.models import ModelSpec
from jaxconv.train import Recipe

#: What a key missing from an older trial's config meant: the default of its day and of now.
DEFAULTS = {**{f"train.{f.name}": f.default for f in dataclasses.fields(Recipe)},
            **{f"model.{f.name}": f.default for f in dataclasses.fields(ModelSpec)
               if f.default is not dataclasses.MISSING}}


def _settings(folder: pathlib.Path) -> dict:
    """The trial's training settings and its model's, flattened to ``train.*`` / ``model.*``."""
    config = yaml.safe_load((folder / "config.yaml").read_text())
    model = config["variants"][0]["model"]
    return {**{f"train.{k}": v for k, v in config["train"].items()},
            **{f"model.{k}": v for k, v in model.items()}}


def rows(results: pathlib.Path) -> list[str]:
    baseline = _settings(results / "recipe-baseline") \
        if (results / "recipe-baseline").is_dir() else {}
    lines = ["| trial | change | val accuracy, last epoch | best val accuracy (epoch) | "
             "train time (s) |", "|---|---|---:|---:|---:|"]
    for folder in sorted(results.glob("recipe-*")):
        runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*/seed-*/result.json"))]
        runs = [r for r in runs if report.finished(r)]
        if not runs:
            continue
        settings = _settings(folder)
        change = ", ".join(f"{k}={v}" for k, v in settings.items()
                           if baseline.get(k, DEFAULTS.get(k)) != v) or "(baseline)"
        for r in runs:
            val = [h["val_accuracy"] for h in r["history"]]
            best = max(range(len(val)), key=val.__getitem__)
            lines.append(f"| {folder.name.removeprefix('recipe-')} | {change} | "
                         f"{100 * val[-1]:.2f} % | {100 * val[best]:.2f} % ({best + 1}) | "
                         f"{r['train_time_s']:.0f} |")
    return lines


if __name__ == "__main__":
    where = pathlib.Path(sys.argv[1] if len(sys.argv) > 1
                         else "experiments/results/fashion_mnist/recipe")
    print("\n".join(rows(where)))
