"""Regenerates the headline numbers from the committed ``result.json`` files, so they cannot go
stale: the README's headline results, the records in the docs' results guide and the blocks table
of the docs' blocks reference.

    python experiments/headline.py           # rewrite the blocks between their markers
    python experiments/headline.py --check   # exit 1 and print a diff where a file differs

Each block sits between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` in its file; only the
text between the markers is generated, everything around them is left as it is. The numbers
come from the records (``record`` and ``best``, where their runs exist, with the wall times
``experiments/time_runs.py`` wrote), Study 1 (``bottlenecks``) and Study 2 (``width_sweep``)
under ``experiments/results/fashion_mnist/``: means and standard deviations over seeds, the paired
neighbour tests of `jaxconv.experiment.stats` with Holm's correction, parameters, MACs and
XLA FLOPs as each run recorded them. The test suite runs ``--check``
(``tests/experiment/test_headline.py``).
"""

from __future__ import annotations

import argparse
import difflib
import functools
import importlib.util
import itertools
import pathlib
import sys
import textwrap

import numpy as np

from jaxconv.experiment import report, stats

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = pathlib.PurePosixPath("experiments/results/fashion_mnist")

#: How the README names each design of Study 1.
DESIGNS = {
    "inverted_residual": "MobileNetV2 inverted residual",
    "inception": "Inception (1x1 reductions)",
    "shuffle": "ShuffleNet",
    "separable": "MobileNetV1 separable",
    "fire": "SqueezeNet fire",
    "basic": "ResNet basic",
    "nin": "Network in Network",
    "resnext": "ResNeXt",
    "bottleneck": "ResNet bottleneck (1x1-3x3-1x1)",
    "convnext": "ConvNeXt",
}


def _accuracies(runs: list[dict]) -> dict[str, dict[int, float]]:
    """variant -> seed -> test accuracy (%) after the last epoch, finished runs only, in the
    runs' order."""
    out: dict[str, dict[int, float]] = {}
    for r in runs:
        if report.finished(r):
            out.setdefault(r["variant"], {})[r["seed"]] = 100 * r["history"][-1]["test_accuracy"]
    return out


def _mean(values: dict[int, float]) -> float:
    return float(np.mean(list(values.values())))


def _std(values: dict[int, float]) -> float:
    return float(np.std(list(values.values()), ddof=1))


def _fill(text: str) -> str:
    return textwrap.fill(text, width=96, break_long_words=False, break_on_hyphens=False)


def _recipe(run_dir: pathlib.Path, runs: list[dict]) -> str:
    """'3 seeds, 6 epochs, no augmentation' from a study's runs and its config (with the
    test-time views, where it averages over any)."""
    train = (report._config(run_dir) or {}).get("train", {})
    seeds = {r["seed"] for r in runs}
    epochs = {len(r["history"]) for r in runs}
    augmented = train.get("crop_padding", 0) or train.get("flip", False)
    views = {"shifts": ", test-time shifts", "flip": ", test-time flips"}.get(
        train.get("tta") or "", "")
    return (f"{len(seeds)} seeds, {'/'.join(map(str, sorted(epochs)))} epochs, "
            f"{'with' if augmented else 'no'} augmentation{views}")


#: The records: (label, run folder under RESULTS, config, goal on mean test accuracy in %,
#: seeds the goal is over, goal on wall minutes per seed).
RECORDS = (("shortest run found to 94%", "record", "configs/fashion_mnist/record.yaml", 94.0,
            5, 5),
           ("best within an hour", "best", "configs/fashion_mnist/best.yaml", 95.0, 3, 60))


@functools.cache
def _script(name: str):
    """``<name>.py`` beside this script, loaded as a module once: the code that reads the
    results comes from this checkout, whichever ``--root`` the results come from."""
    spec = importlib.util.spec_from_file_location(name, pathlib.Path(__file__).parent
                                                  / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wall(found: list[dict], count: int, goal: float, verdict) -> str:
    """The wall minutes per seed of ``found`` (``record_seeds.seeds``'s rows of the finished
    seeds: quiet, cold-cache timings of these very runs), the CPU, and whether the slowest
    meets ``goal`` minutes once all ``count`` seeds are timed so (judged by ``verdict``,
    ``record_seeds.verdict``)."""
    timed = [s for s in found if s["wall_min"] is not None]
    if not timed:
        return f"not timed quietly (goal <= {goal:g} min)"
    minutes = sorted(s["wall_min"] for s in timed)
    low, high = f"{minutes[0]:.1f}", f"{minutes[-1]:.1f}"
    span = low if low == high else f"{low}-{high}"
    cpus = sorted({s["cpu"] or "an unrecorded CPU" for s in timed})
    if len(timed) < count:
        judged = f"{len(timed)} of {count} seeds timed quietly; goal <= {goal:g} min"
    else:
        judged = f"goal <= {goal:g} min: " + verdict(minutes[-1], goal, "min", False)
    return f"{span} min on {', '.join(cpus)} ({judged})"


def records(root: pathlib.Path) -> list[str]:
    """The README's lines on the records whose run folders hold a finished run: test accuracy
    over the seeds against the goal (judged once the goal's seeds have all ended, a diverged
    seed a miss), and the quiet wall time per seed of the finished seeds against its goal;
    the seeds as ``record_seeds.seeds`` reads them."""
    rows = []
    record_seeds = _script("record_seeds")
    for label, folder, config, goal, count, minutes in RECORDS:
        run_dir = root / RESULTS / folder
        runs = report.results(run_dir) if run_dir.is_dir() else []
        found = record_seeds.seeds(run_dir, runs) if runs else []
        values = [s["test"] for s in found if s["finished"]]
        if not values:
            continue
        if not all(np.isfinite(values)):
            raise ValueError(f"{run_dir}: a test accuracy that is not a number: {values}")
        mean, diverged = float(np.mean(values)), len(found) - len(values)
        if diverged:
            verdict = f">= {goal:.1f}%: missed, {diverged} of its seeds diverged"
        elif len(found) < count:
            verdict = f"{len(found)} of its {count} seeds so far; goal >= {goal:.1f}%"
        else:
            verdict = f">= {goal:.1f}%: " + record_seeds.verdict(mean, goal, "points", True)
        spread = f" ± {np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
        variant = runs[0]["variant"]
        wall = _wall([s for s in found if s["finished"]], count, minutes, record_seeds.verdict)
        rows.append(f"| {label} (`{config}`) | {DESIGNS.get(variant, variant)} "
                    f"({runs[0]['params']:,} parameters), "
                    f"{_recipe(run_dir, runs).split(', ', 1)[1]} | {mean:.2f}{spread} % "
                    f"({verdict}) | {wall} |")
    if not rows:
        return []
    return [_fill("The records at ~0.3M parameters on Fashion-MNIST: each trained as its "
                  "config says, its recipe and length chosen on the validation split; the wall "
                  "time is a whole `jaxconv run` per seed, compilation included, on a quiet "
                  "machine (`experiments/time_runs.py`):"), "",
            "| record | design and recipe | test accuracy (mean ± std) | wall time per seed |",
            "|---|---|---|---|", *rows, ""]


def headline(root: pathlib.Path) -> str:
    """The README's headline block: the records (where run), Study 1's ranking with its
    Holm-corrected neighbour tests, and Study 2's cost per halving of the squeeze."""
    study1 = root / RESULTS / "bottlenecks"
    runs1 = report.results(study1)
    accs = _accuracies(runs1)
    params = {r["variant"]: r["params"] for r in runs1}
    ranked = sorted(accs, key=lambda v: -_mean(accs[v]))
    pairs = [stats.paired(accs[a], accs[b]) for a, b in itertools.pairwise(ranked)]
    tests = [c for c in pairs if c.test != "none"]
    adjusted = [p for p in stats.holm([c.p for c in pairs]) if p == p]
    passed = sum(p < 0.05 for p in adjusted)
    verdict = (f"no gap between neighbours in this ranking is established: paired by seed, "
               f"with Holm's correction over its {len(tests)} neighbour tests, the smallest "
               f"adjusted p is {min(adjusted):.2f}" if not passed else
               f"{passed} of the {len(tests)} gaps between neighbours survive Holm's "
               f"correction (paired by seed)")
    lines = [*records(root), _fill(f"The ten designs at ~0.3M parameters on Fashion-MNIST "
                   f"({_recipe(study1, runs1)}); {verdict}. [The results of the "
                   "studies](docs/guides/results.md) has the rest:"), "",
             "| design | parameters | test accuracy (mean ± std) |", "|---|---:|---:|"]
    lines += [f"| {DESIGNS.get(v, v)} | {params[v]:,} | {_mean(accs[v]):.2f} ± "
              f"{_std(accs[v]):.2f} % |" for v in ranked]
    study2 = root / RESULTS / "width_sweep"
    runs2 = report.results(study2)
    sweep = _accuracies(runs2)
    ratio = {r["variant"]: r["params"] for r in runs2}
    order = sorted(sweep, key=lambda v: -ratio[v])        # widest first: ratio 1, 1/2, ...
    steps = [_mean(sweep[a]) - _mean(sweep[b]) for a, b in itertools.pairwise(order[1:])]
    seeds = set.intersection(*(set(sweep[v]) for v in order))
    every = all(sweep[a][s] > sweep[b][s] for a, b in itertools.pairwise(order) for s in seeds)
    trend = ("accuracy falls at every step in every seed, though no single step is established "
             "by itself" if every else "the per-seed order is not the same in every seed")
    lines += ["", _fill(f"A 1x1 squeeze in the ResNet bottleneck costs {min(steps):.2f}-"
              f"{max(steps):.2f} points on average per halving of its width from ratio 1/2 "
              f"down ({_recipe(study2, runs2)}; {trend}), and a trained squeeze keeps "
              "only slightly more of its input's variance than a random projection of the "
              "same width.")]
    return "\n".join(lines)


def blocks(root: pathlib.Path) -> str:
    """The blocks reference's table: each family's 0.3M preset as Study 1 trained it
    (parameters, MACs and XLA FLOPs of one 28x28x1 image's forward pass, from its
    ``result.json``), in the study's order."""
    runs = report.results(root / RESULTS / "bottlenecks")
    first = {}
    for r in runs:
        first.setdefault(r["variant"], r)
    papers = _script("blocks_table").PAPERS
    lines = ["| block | paper | preset | params | MACs | XLA FLOPs |",
             "|---|---|---|---:|---:|---:|"]
    lines += [f"| `{v}` | {papers[v]} | `{v}-0.3m` | {r['params']:,} | {r['macs'] / 1e6:.1f}M | "
              f"{r['xla_flops'] / 1e6:.1f}M |" for v, r in first.items()]
    return "\n".join(lines)


#: (file, marker name, what fills it)
BLOCKS = (("README.md", "headline", headline),
          ("docs/guides/results.md", "records", lambda root: "\n".join(records(root)).strip()),
          ("docs/reference/blocks.md", "blocks", blocks))


def replace(text: str, name: str, content: str, path: str = "") -> str:
    """``text`` with what lies between ``<!-- name:start -->`` and ``<!-- name:end -->``
    replaced by ``content`` (the markers stay on lines of their own)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"{path or 'text'}: expected one '{start}' before one '{end}'")
    head, rest = text.split(start)
    _, tail = rest.split(end)
    return f"{head}{start}\n{content}\n{end}{tail}"


def regenerate(root: pathlib.Path = ROOT) -> dict[pathlib.Path, tuple[str, str]]:
    """path -> (text on disk, text with its blocks regenerated)."""
    out: dict[pathlib.Path, tuple[str, str]] = {}
    for relative, name, make in BLOCKS:
        path = root / relative
        old, new = out.get(path, (path.read_text(), path.read_text()))
        out[path] = (old, replace(new, name, make(root), relative))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 and print a diff where a file differs")
    parser.add_argument("--root", type=pathlib.Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    stale = 0
    for path, (old, new) in regenerate(args.root).items():
        if old == new:
            continue
        if args.check:
            stale += 1
            name = str(path.relative_to(args.root))
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True),
                f"{name} (committed)", f"{name} (from the result files)"))
        else:
            path.write_text(new)
            print(f"rewrote {path.relative_to(args.root)}")
    if stale:
        print(f"\n{stale} file(s) differ from the committed results: run "
              "python experiments/headline.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
