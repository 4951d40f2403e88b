"""Channel retention across the width sweep: what each squeezing 1x1 keeps, trained and at
initialisation, against the reduction ratio (or in the bottleneck variants of any study).

    python experiments/retention_sweep.py [RUN_DIR] [--images N]

Reads every finished run of ``RUN_DIR`` (default
``experiments/results/fashion_mnist/width_sweep``) whose checkpoints are on this machine, of
each variant built of ResNet bottleneck blocks (the other designs of a study are passed over),
runs `jaxconv.analysis.retention` on its trained model and on the model it started from, over
the first ``N`` training images, and writes next to the runs:

- ``retention.csv``: one row per run, state (trained / initial) and squeezing 1x1;
- ``retention.md``: per variant, the means over its squeezing 1x1s and seeds;
- ``retention.png``: retained, optimum and random share against the reduction ratio.

Checkpoints stay on the machine that trained a run, so a run trained elsewhere cannot be
measured here: its rows are kept from the ``retention.csv`` already in ``RUN_DIR`` when that file
measured it over the same number of images, and left out and named otherwise (as are diverged
runs). So the files grow with every machine that adds seeds, and never lose a run measured
before.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import inspect
import io
import json
import pathlib

import numpy as np
import yaml

from jaxconv import analysis, blocks, experiment
from jaxconv.experiment import report
from jaxconv.tuning.files import atomic_write_bytes, atomic_write_text

FIELDS = ["variant", "ratio", "seed", "state", "images",
          *[f.name for f in dataclasses.fields(analysis.RetentionRow)]]
#: The type of each CSV column that is not a string.
TYPES = {"ratio": float, "seed": int, "images": int, "in_channels": int, "out_channels": int,
         "retained": float, "optimum": float, "random": float, "effective_rank": float}
ELSEWHERE = "checkpoints on another machine"


#: The reduction ratio of a bottleneck stage whose options leave it unset (the block's default).
DEFAULT_RATIO = inspect.signature(blocks.get("bottleneck").__init__).parameters["ratio"].default


def _ratio(variant: dict) -> float | None:
    """The variant's bottleneck reduction ratio, the same in every stage (set in the stage's
    options or the block's default); None for a variant not built of bottleneck blocks (a
    study of several designs measures its bottleneck variants alone)."""
    stages = variant["model"]["stages"]
    if any(stage.get("block") != "bottleneck" for stage in stages):
        return None
    ratios = {(stage.get("options") or {}).get("ratio", DEFAULT_RATIO) for stage in stages}
    if len(ratios) != 1:
        raise ValueError(f"variant {variant['name']!r}: expected one reduction ratio in every "
                         f"stage, got {sorted(ratios)}")
    return float(ratios.pop())


def measure(run_dir: pathlib.Path, images: int
            ) -> tuple[list[dict], list[tuple[str, int, str]]]:
    """CSV rows for every finished run with checkpoints here, and the runs left out as
    ``(variant, seed, why)``."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    rows, missing = [], []
    pixels = None
    for variant in config["variants"]:
        name = variant["name"]
        ratio = _ratio(variant)
        if ratio is None or ratio >= 1:     # no bottleneck, or its 1x1s squeeze nothing
            continue
        for folder in sorted((run_dir / name).glob("seed-*")):
            seed = int(folder.name.removeprefix("seed-"))
            if not (folder / "result.json").is_file():
                continue
            if not report.finished(json.loads((folder / "result.json").read_text())):
                missing.append((name, seed, "diverged"))
                continue
            if not (folder / "checkpoints").is_dir():
                missing.append((name, seed, ELSEWHERE))
                continue
            for state, initial in (("trained", False), ("initial", True)):
                run = experiment.load_run(run_dir, name, seed, initial=initial)
                if pixels is None:
                    pixels = run.dataset("train").images[:images]
                x = run.normalize(pixels)
                for r in analysis.retention(run.model, x):
                    rows.append({"variant": name, "ratio": ratio, "seed": seed,
                                 "state": state, "images": images, **dataclasses.asdict(r)})
            print(f"{name} seed {seed}: measured", flush=True)
    return rows, missing


def read_rows(path: pathlib.Path) -> list[dict]:
    """The rows of an earlier ``retention.csv`` (none when there is no such file), typed as
    `measure` makes them; rows without an ``images`` column (files written before it existed)
    are returned without one."""
    if not path.is_file():
        return []
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    return [{k: TYPES[k](v) if k in TYPES and v not in ("", None) else v
             for k, v in r.items() if v not in ("", None)} for r in rows]


def merge(rows: list[dict], missing: list[tuple[str, int, str]], earlier: list[dict],
          images: int) -> tuple[list[dict], list[str], list[str]]:
    """``rows`` plus the earlier rows of the runs that could not be measured here because their
    checkpoints are elsewhere, when those rows were measured over the same number of
    ``images``.

    Returns:
      the rows, the runs left out (with why) and the runs whose rows were kept.
    """
    rows, left_out, kept = list(rows), [], []
    for name, seed, why in missing:
        old = [r for r in earlier if r.get("variant") == name and r.get("seed") == seed]
        if why == ELSEWHERE and old and all(r.get("images") == images for r in old):
            rows.extend(old)
            kept.append(f"{name} seed {seed}")
        elif why == ELSEWHERE and old:
            left_out.append(f"{name} seed {seed} ({why}; measured earlier over "
                            f"{old[0].get('images', 'an unknown number of')} images)")
        else:
            left_out.append(f"{name} seed {seed} ({why})")
    return rows, left_out, kept


def summary(rows: list[dict]) -> list[dict]:
    """Per variant and state: means over its squeezing 1x1s and seeds, and how far the layers
    keep more than random projections do (``margin``: retained - random, averaged over a seed's
    layers; its mean over seeds and, with two seeds or more, their standard deviation)."""
    out = []
    keys = sorted({(r["ratio"], r["variant"], r["state"]) for r in rows}, reverse=True)
    for ratio, variant, state in keys:
        group = [r for r in rows if r["variant"] == variant and r["state"] == state]
        means = {k: float(np.mean([r[k] for r in group]))
                 for k in ("retained", "optimum", "random", "effective_rank")}
        means["in_channels"] = float(np.mean([r["in_channels"] for r in group]))
        means["out_channels"] = float(np.mean([r["out_channels"] for r in group]))
        margins = [np.mean([r["retained"] - r["random"] for r in group if r["seed"] == seed])
                   for seed in sorted({r["seed"] for r in group})]
        means["margin"] = float(np.mean(margins))
        means["margin_std"] = float(np.std(margins, ddof=1)) if len(margins) > 1 else None
        out.append({"variant": variant, "ratio": ratio, "state": state,
                    "layers": len({r["path"] for r in group}),
                    "seeds": len({r["seed"] for r in group}), **means})
    return out


def markdown(table: list[dict], missing: list[str], images: int, kept: list[str] = ()) -> str:
    lines = [f"Squeezing 1x1s of the bottleneck variants over {images:,} training images: the "
             "share of "
             "their input's variance that the layer keeps (retained), that the best projection "
             "to as many channels keeps (optimum: the top principal components) and that random "
             "projections keep (random); means over the squeezing 1x1s of a variant and its "
             "seeds. `python experiments/retention_sweep.py` rebuilds this file.", "",
             "| variant | state | squeezing 1x1s | seeds | mean C_in -> C_out | retained | "
             "optimum | random | retained - random (± std over seeds) | retained / optimum | "
             "effective rank of input |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for t in table:
        spread = "" if t["margin_std"] is None else f" ± {t['margin_std']:.3f}"
        lines.append(
            f"| {t['variant']} | {t['state']} | {t['layers']} | {t['seeds']} | "
            f"{t['in_channels']:.0f} -> {t['out_channels']:.0f} | {t['retained']:.3f} | "
            f"{t['optimum']:.3f} | {t['random']:.3f} | {t['margin']:+.3f}{spread} | "
            f"{t['retained'] / t['optimum']:.3f} | {t['effective_rank']:.1f} |")
    if kept:
        lines += ["", "Kept from an earlier run of the script (their checkpoints are on the "
                  "machine that trained them): " + ", ".join(kept) + "."]
    if missing:
        lines += ["", "Not measured: " + ", ".join(missing) + "."]
    return "\n".join(lines) + "\n"


def plot(table: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    styles = {"retained": ("o-", "C0"), "optimum": ("s--", "C1"), "random": ("^:", "C2")}
    for state, alpha in (("trained", 1.0), ("initial", 0.45)):
        part = sorted((t for t in table if t["state"] == state), key=lambda t: t["ratio"])
        if not part:
            continue
        ratios = [t["ratio"] for t in part]
        for key, (style, color) in styles.items():
            label = key if state == "trained" else f"{key}, at initialisation"
            ax.plot(ratios, [t[key] for t in part], style, color=color, alpha=alpha,
                    label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("reduction ratio (inner width / block width)")
    ax.set_ylabel("share of the 1x1's input variance kept")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=pathlib.Path,
                        default=pathlib.Path("experiments/results/fashion_mnist/width_sweep"))
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error(f"--images: {args.images} must be at least 1")
    rows, missing = measure(args.run_dir, args.images)
    earlier = read_rows(args.run_dir / "retention.csv")
    rows, missing, kept = merge(rows, missing, earlier, args.images)
    if not rows:
        parser.error(f"run_dir: {args.run_dir} has no finished run with its checkpoints here, "
                     f"and no earlier retention.csv measured one over {args.images:,} images")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(args.run_dir / "retention.csv", text.getvalue())
    table = summary(rows)
    atomic_write_text(args.run_dir / "retention.md",
                      markdown(table, missing, args.images, kept))
    plot(table, args.run_dir / "retention.png")
    print(json.dumps({"runs": len({(r["variant"], r["seed"]) for r in rows}),
                      "kept_from_earlier": kept, "not_measured": missing}))


if __name__ == "__main__":
    main()
