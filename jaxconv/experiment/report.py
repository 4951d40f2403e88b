"""Reports from a run folder: ``report.md``, ``results.csv`` and PNG plots.

Everything is rebuilt from the files the runner leaves (``config.yaml``, ``command.txt`` and one
``result.json`` per variant and seed), so ``jaxconv report RUN_DIR`` gives the same report at
any later time. Every file is written atomically.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import itertools
import json
import math
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import yaml

from jaxconv.analysis.tables import markdown_table
from jaxconv.experiment import cores, provenance, stats
from jaxconv.train import Recipe
from jaxconv.tuning.files import atomic_write_bytes, atomic_write_text

COLUMNS = ("variant", "params", "macs", "xla_flops", "train_time_s", "images_per_second",
           "test_acc_mean", "test_acc_std", "best_epoch", "seeds", "diverged", "clocks")
PLOTS = ("accuracy_vs_params.png", "accuracy_vs_flops.png", "accuracy_vs_time.png",
         "learning_curves.png")


@dataclasses.dataclass(frozen=True)
class VariantRow:
    """One variant aggregated over its finished seeds."""

    variant: str
    params: int
    macs: int
    xla_flops: float
    train_time_s: float
    images_per_second: float
    test_acc_mean: float
    test_acc_std: float
    best_epoch: int
    seeds: int
    curve: tuple[float, ...]
    diverged: int = 0
    curve_of: str = "test"
    clocks: str = "not recorded"

    @property
    def timed(self) -> bool:
        """Whether the row's times may be read as speed figures: none of its runs is known to
        have shared its cores or to have been resumed (see `clock`)."""
        return self.clocks in ("quiet", "not recorded")


#: A run's `clock`, from the most to the least telling for a row of several runs.
CLOCKS = ("shared", "resumed", "not recorded", "quiet")


def clock(record: Mapping[str, Any]) -> str:
    """What ``record``'s clock is, by its ``cores`` (`jaxconv.experiment.cores.Watch`, written
    by the process that finished the run) and ``segments``: ``"quiet"`` (one process trained it
    all, with other work and stolen time under 2% of the cores' capacity), ``"shared"`` (more
    than that, or CPU accounts that disagree: `jaxconv.experiment.cores.quiet`), ``"resumed"``
    (the finishing process started from a checkpoint, so earlier processes trained part of it
    unwatched) or ``"not recorded"`` (no ``cores``: a ``result.json`` before schema 5, no
    ``/proc/stat``, or a run of several processes, whose process 0 watches only its own host)."""
    load = record.get("cores")
    segments = record.get("segments") or ()
    if load and load.get("processes", 1) == 1:
        if not load.get("quiet"):
            return "shared"
        return "resumed" if load.get("from_step", 0) > 0 else "quiet"
    return "resumed" if segments and segments[-1].get("from_step", 0) > 0 else "not recorded"


def _config(run_dir: pathlib.Path) -> dict[str, Any] | None:
    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def settings(config: Mapping[str, Any] | None) -> list[str]:
    """Report lines for the choices that change what a result means: the precision it trained
    in, and each variant's initialisation and regularisers."""
    if not config:
        return []
    dtype = config.get("train", {}).get("compute_dtype", "float32")
    lines = [f"- precision: {dtype} forward and backward passes" + (
        "; float32 parameters, optimizer state, BatchNorm statistics and loss"
        if dtype != "float32" else "")]
    levers = lever_settings(config.get("train", {}))
    if levers:
        lines.append(f"- recipe levers: {levers}")
    for variant in config.get("variants", []):
        model = variant.get("model", {})
        parts = [f"init {model.get('init', 'reference')}"]
        if model.get("zero_init_residual") is not None:
            parts.append(f"zero_init_residual {str(model['zero_init_residual']).lower()}")
        if model.get("drop_path"):
            parts.append(f"drop-path {model['drop_path']} (linear over depth)")
        if model.get("dropout"):
            parts.append(f"dropout {model['dropout']} before the head")
        lines.append(f"- {variant.get('name', '?')}: {', '.join(parts)}")
    return lines


#: Recipe fields that change how a run trains or is evaluated beyond the basic recipe; the
#: report names those a study sets away from their defaults.
LEVERS = ("lr_scaling", "reference_batch_size", "bn_lr_scale", "bn_momentum", "cutout_rate",
          "cutout_size", "ema_decay", "tta", "stem_init", "dirac_init", "split_seed",
          "test_eval", "policy_version")


def lever_settings(train_config: Mapping[str, Any]) -> str:
    """The `LEVERS` a resolved ``train`` section sets away from the `jaxconv.train.Recipe`
    defaults, as ``key value`` pairs (empty when none is)."""
    defaults = {f.name: f.default for f in dataclasses.fields(Recipe)}
    changed = [f"{key} {train_config[key]}" for key in LEVERS
               if key in train_config and train_config[key] != defaults[key]]
    return ", ".join(changed)


def results(run_dir: pathlib.Path) -> list[dict[str, Any]]:
    """The ``result.json`` of every run of ``config.yaml``'s variants and seeds (every run on
    disk when there is no ``config.yaml``), in the config's variant order."""
    config = _config(run_dir)
    found = [json.loads(p.read_text()) for p in sorted(run_dir.glob("*/seed-*/result.json"))]
    if config is None:
        return sorted(found, key=lambda r: (r["variant"], r["seed"]))
    order = {v["name"]: i for i, v in enumerate(config["variants"])}
    seeds = set(config["seeds"])
    kept = [r for r in found if r["variant"] in order and r["seed"] in seeds]
    return sorted(kept, key=lambda r: (order[r["variant"]], r["seed"]))


def left_out(run_dir: pathlib.Path) -> list[str]:
    """Runs on disk that `results` leaves out (variants or seeds no longer in the config)."""
    kept = {f"{r['variant']}/seed-{r['seed']}" for r in results(run_dir)}
    return [name for name in (f"{p.parent.parent.name}/{p.parent.name}"
                              for p in sorted(run_dir.glob("*/seed-*/result.json")))
            if name not in kept]


def finished(record: Mapping[str, Any]) -> bool:
    return record.get("status", "finished") == "finished"


def aggregate(found: list[dict[str, Any]]) -> list[VariantRow]:
    """One row per variant: means over its finished seeds; diverged seeds are counted apart."""
    rows, groups = [], {}
    for result in found:
        groups.setdefault(result["variant"], []).append(result)
    for variant, every in groups.items():
        runs = [r for r in every if finished(r)]
        diverged = len(every) - len(runs)
        if not runs:
            nan = float("nan")
            rows.append(VariantRow(
                variant=variant, params=every[0]["params"], macs=every[0]["macs"],
                xla_flops=every[0]["xla_flops"], train_time_s=nan, images_per_second=nan,
                test_acc_mean=nan, test_acc_std=nan, best_epoch=0, seeds=0, curve=(),
                diverged=diverged, clocks="-"))
            continue
        accs = np.array([r["history"][-1]["test_accuracy"] for r in runs])
        epochs = min(len(r["history"]) for r in runs)
        picked = "val_accuracy" if "val_accuracy" in runs[0]["history"][0] else "test_accuracy"
        # runs that saw the test set only at the end (test_eval: end) draw their validation
        # curve; without a validation split, the curve is the last epoch's test point alone
        curve_of = "test" if all("test_accuracy" in h for r in runs
                                 for h in r["history"][:epochs]) else picked.split("_")[0]
        mean_curve = _per_epoch(runs, epochs, f"{curve_of}_accuracy")
        select = _per_epoch(runs, epochs, picked)
        rows.append(VariantRow(
            variant=variant, params=runs[0]["params"], macs=runs[0]["macs"],
            xla_flops=runs[0]["xla_flops"],
            train_time_s=float(np.mean([r["train_time_s"] for r in runs])),
            images_per_second=float(np.mean([r["images_per_second"] for r in runs])),
            test_acc_mean=float(accs.mean()),
            test_acc_std=float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
            best_epoch=int(np.nanargmax(select)) + 1, seeds=len(runs),
            curve=tuple(float(v) for v in mean_curve), diverged=diverged, curve_of=curve_of,
            clocks=min((clock(r) for r in runs), key=CLOCKS.index)))
    return rows


def _per_epoch(runs: list[dict[str, Any]], epochs: int, key: str) -> np.ndarray:
    """The mean over ``runs`` of ``key`` in each of the first ``epochs`` epoch records; NaN
    where the records do not hold it."""
    return np.array([[h.get(key, np.nan) for h in r["history"][:epochs]] for r in runs]).mean(0)


def table(rows: list[VariantRow]) -> str:
    header = ["variant", "params", "MACs", "XLA FLOPs", "train time (s)", "images/s",
              "test accuracy (mean ± std)", "best epoch", "seeds", "diverged"]
    return markdown_table(header, "lrrrrrrrrr", ([
        r.variant, f"{r.params:,}", f"{r.macs / 1e6:.2f}M", f"{r.xla_flops / 1e6:.2f}M",
        *([*([f"{r.train_time_s:.1f}", f"{r.images_per_second:,.0f}"] if r.timed
             else [r.clocks] * 2),
           f"{100 * r.test_acc_mean:.2f} ± {100 * r.test_acc_std:.2f} %", f"{r.best_epoch}",
           f"{r.seeds}"] if r.seeds else ["-", "-", "every seed diverged", "-", "0"]),
        f"{r.diverged}"] for r in rows))


def clock_notes(found: list[dict[str, Any]]) -> list[str]:
    """Markdown lines on whether the finished runs' clocks are speed figures (`clock`): the
    runs that shared their cores, were resumed or did not record it, by name; one line when
    every run had its cores to itself, or when none recorded it."""
    runs: dict[str, list[str]] = {}
    for r in filter(finished, found):
        runs.setdefault(clock(r), []).append(f"{r['variant']}/seed-{r['seed']}")
    if not runs:
        return []
    if set(runs) == {"quiet"}:
        return ["- clocks: every run had its cores to itself (other work under "
                f"{cores.QUIET_SHARE:.0%} of their capacity while it trained)"]
    if set(runs) == {"not recorded"}:
        return ["- clocks: no run recorded whether other work shared its cores (result.json "
                "before schema 5, no /proc/stat, or several processes), so the times are speed "
                "figures only if the machine was otherwise known to be quiet"]
    says = {
        "shared": "shared their cores with other work or the hypervisor (more than "
                  f"{cores.QUIET_SHARE:.0%} of their capacity while they trained), or their CPU "
                  "accounts disagreed, so their times are not speed figures and the table "
                  "gives none for their variants",
        "resumed": "were resumed, so no one process watched all of their training: their "
                   "times are not speed figures and the table gives none for their variants",
        "not recorded": "did not record whether other work shared their cores (result.json "
                        "before schema 5, no /proc/stat, or several processes), so their times "
                        "are speed figures only if the machine was otherwise known to be quiet",
        "quiet": "had their cores to themselves"}
    return [f"- clocks: {', '.join(runs[state])} {says[state]}" for state in CLOCKS
            if state in runs]


def seed_noise(found: list[dict[str, Any]], level: float = 0.95) -> list[str]:
    """Markdown lines saying which differences in test accuracy exceed seed noise: the variants
    ranked by mean, each with the ``level`` confidence interval of its mean (Student's t over
    its finished seeds), and each against the next in the ranking paired by seed (every
    variant of a study shares each seed's validation split and data order): the mean per-seed
    difference with its interval, the paired t-test, the effect size d_z and the p-value
    after Holm's correction over the family of neighbour tests (`stats.paired`, `stats.holm`).
    A pair whose seeds differ falls back to Welch's test, marked. Needs two or more seeds for
    an interval or a test; says so otherwise. Runs without a finite accuracy are left out and
    named."""
    from scipy import stats as scipy_stats

    accs: dict[str, dict[int, float]] = {}
    dropped = []
    for r in found:
        if finished(r):
            acc = 100 * float(r["history"][-1]["test_accuracy"])
            if np.isfinite(acc):
                accs.setdefault(r["variant"], {})[r["seed"]] = acc
            else:
                dropped.append(f"{r['variant']} seed {r['seed']}")
    ranked = sorted(accs, key=lambda v: -float(np.mean(list(accs[v].values()))))
    pairs = [stats.paired(accs[a], accs[b], level) for a, b in itertools.pairwise(ranked)]
    if not pairs:
        return ["One variant: nothing to compare.", ""]
    adjusted = stats.holm([c.p for c in pairs])
    lines = [f"| rank | variant | seeds | test accuracy (mean ± std) | {level:.0%} interval "
             f"of the mean | ahead of the next by ({level:.0%} interval) | effect size | test "
             "| p | Holm p | larger than seed noise |",
             "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for rank, variant in enumerate(ranked, 1):
        a = np.array(list(accs[variant].values()))
        spread, interval = "", "-"
        if len(a) > 1:
            std = float(a.std(ddof=1))
            half = float(scipy_stats.t.ppf(0.5 + level / 2, len(a) - 1)) * std / np.sqrt(len(a))
            spread, interval = f" ± {std:.2f}", f"{a.mean() - half:.2f} - {a.mean() + half:.2f} %"
        gap, effect, test, p_value, holm_p, verdict = "-", "-", "-", "-", "-", "-"
        if rank < len(ranked):
            c, p_holm = pairs[rank - 1], adjusted[rank - 1]
            gap = f"{c.difference:.2f} points"
            if c.test == "none":
                verdict = "unknown: one seed"
            else:
                gap += f" ({c.low:.2f} to {c.high:.2f})"
                effect = f"{'d_z' if c.test == 'paired' else 'd'} {c.effect:.2f}"
                test = (f"paired, {len(c.seeds)} seeds" if c.test == "paired" else
                        "**Welch (unpaired: the seeds differ)**")
                p_value, holm_p = f"{c.p:.3f}", f"{p_holm:.3f}"
                verdict = "yes" if p_holm < 1 - level else "no"
        lines.append(f"| {rank} | {variant} | {len(a)} | {a.mean():.2f}{spread} % | "
                     f"{interval} | {gap} | {effect} | {test} | {p_value} | {holm_p} | "
                     f"{verdict} |")
    tests = sum(1 for c in pairs if c.test != "none")
    note = ("No neighbours both have two seeds or more: nothing can be tested." if not tests else
            f"Each variant against the next one down, paired by seed (same validation split "
            f"and data order per seed): the mean of the per-seed differences with its "
            f"{level:.0%} interval (Student's t, n - 1 degrees of freedom), the two-sided "
            f"paired t-test, and the effect size d_z (the mean difference over the standard "
            f"deviation of the differences). Holm p: adjusted over the {tests} neighbour "
            f"test{'s' if tests > 1 else ''} of this ranking; \"larger than seed noise\" "
            f"when it is under {1 - level:.0%}. A pair without the same seeds loses the "
            f"pairing and is compared by Welch's unequal-variance test (effect size d: the "
            f"difference over the pooled standard deviation), marked. With few seeds only "
            f"large gaps can show.")
    return [*lines, "", note, *([f"Left out, no finite accuracy: {', '.join(dropped)}."]
                                if dropped else []), ""]


def ranking_against(found: list[dict[str, Any]], other: pathlib.Path,
                    level: float = 0.95) -> list[str]:
    """Markdown lines comparing this study's ranking of its variants (mean test accuracy over
    finished seeds) with the study in run folder ``other``: each shared variant's mean, seeds
    and rank among the shared variants in both, and Spearman's rank correlation with its
    approximate ``level`` interval and exact test (`stats.rank_correlation`). Variants in one
    study only are named and left out; a missing or empty ``other`` is said, not raised."""
    if not other.is_dir() or not results(other):
        return [f"`compare_with`: {str(other)!r} holds no finished runs to compare with (a run "
                "folder, relative to the directory the report is built from).", ""]
    ours = {r.variant: r for r in aggregate(found) if r.seeds}
    theirs = {r.variant: r for r in aggregate(results(other)) if r.seeds}
    c = stats.rank_correlation({v: r.test_acc_mean for v, r in ours.items()},
                               {v: r.test_acc_mean for v, r in theirs.items()}, level)
    if len(c.variants) < 2:
        return [f"`compare_with`: {other} shares {len(c.variants)} variant(s) with this study: "
                "no ranking to compare.", ""]

    def ranks(rows):
        order = sorted(c.variants, key=lambda v: -rows[v].test_acc_mean)
        return {v: order.index(v) + 1 for v in c.variants}

    here, there = ranks(ours), ranks(theirs)
    rows = [[v, f"{100 * ours[v].test_acc_mean:.2f} %", f"{ours[v].seeds}", f"{here[v]}",
             f"{100 * theirs[v].test_acc_mean:.2f} %", f"{theirs[v].seeds}", f"{there[v]}",
             f"{there[v] - here[v]:+d}"] for v in c.variants]
    lines = [markdown_table(
        ["variant", "test accuracy here (mean)", "seeds here", "rank here",
         f"test accuracy in {other.name} (mean)", f"seeds in {other.name}",
         f"rank in {other.name}", "places gained here"], "lrrrrrrr", rows), ""]
    n = len(c.variants)
    if math.isnan(c.rho):
        lines.append(f"Spearman's rank correlation over the {n} shared variants: undefined (one "
                     "study's means all tie).")
    else:
        interval = (f"{c.low:.2f} to {c.high:.2f}" if not math.isnan(c.low) else
                    "none (under four variants)" if n < 4 else "none (rho is +-1)")
        test = ("undefined (under three variants)" if math.isnan(c.p) else
                f"{c.p:.4f} (exact: every ordering of the ranks)" if n <= stats.EXACT_RANKS
                else f"{c.p:.4f} (t approximation)")
        lines.append(
            f"Spearman's rank correlation of the two rankings over the {n} shared variants "
            f"(ranks among those variants; ties share their average rank): rho = {c.rho:.2f}; "
            f"approximate {level:.0%} interval {interval} (Fisher's z with Bonett and Wright's "
            f"variance: it treats the variants as a sample of designs, leaves out the seed "
            f"noise inside each mean, and is rough with few variants); p of the test of no "
            f"association = {test}.")
    only = sorted(set(ours) ^ set(theirs))
    if only:
        lines.append(f"In one study only, left out: {', '.join(only)}.")
    return [*lines, ""]


def comparison(run_dir: pathlib.Path, found: list[dict[str, Any]]) -> list[str]:
    """The report's section on another study's ranking (`ranking_against`), where the run
    folder's ``config.yaml`` names one in ``compare_with``; no lines otherwise."""
    other = (_config(run_dir) or {}).get("compare_with")
    if not other:
        return []
    return [f"## Against the ranking of {other}", "",
            *ranking_against(found, pathlib.Path(other))]


def _plot(rows: list[VariantRow], x_of, xlabel: str, path: pathlib.Path, log_x: bool,
          note: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for r in (r for r in rows if r.seeds):
        ax.errorbar(x_of(r), 100 * r.test_acc_mean, yerr=100 * r.test_acc_std, fmt="o",
                    capsize=4)
        ax.annotate(r.variant, (x_of(r), 100 * r.test_acc_mean), textcoords="offset points",
                    xytext=(5, 5), fontsize=8)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    if note:
        ax.set_title(note, fontsize=8, wrap=True)
    ax.grid(alpha=0.3)
    _save(fig, path)


def _save(fig, path: pathlib.Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def _curves(rows: list[VariantRow], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for r in (r for r in rows if r.seeds):
        ax.plot(range(1, len(r.curve) + 1), [100 * v for v in r.curve], marker=".",
                label=r.variant)
    ax.set_xlabel("epoch")
    names = {"test": "test", "val": "validation"}
    drawn = sorted({names[r.curve_of] for r in rows if r.seeds}) or ["test"]
    ax.set_ylabel(f"{' or '.join(drawn)} accuracy (%), mean over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def build(run_dir: str | pathlib.Path) -> tuple[list[VariantRow], pathlib.Path]:
    """Writes ``report.md``, ``results.csv`` and the plots into ``run_dir``.

    Args:
      run_dir: a run folder with ``config.yaml`` and at least one finished run.

    Returns:
      ``(rows, path)``: one row per variant and the path of ``report.md``.
    """
    run_dir = pathlib.Path(run_dir)
    found = results(run_dir)
    if not found:
        others = left_out(run_dir)
        raise ValueError(f"{run_dir}: no finished runs of config.yaml's variants and seeds to "
                         "report" + (f" (runs of others: {', '.join(others)})" if others else
                                     " (no */seed-*/result.json)"))
    rows = aggregate(found)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    clock_columns = ("train_time_s", "images_per_second")
    for r in rows:     # a clock that is not a speed figure is left out here as in the table
        writer.writerow(["" if c in clock_columns and not r.timed else getattr(r, c)
                         for c in COLUMNS])
    atomic_write_text(run_dir / "results.csv", buffer.getvalue())
    for name, x_of, title in zip(PLOTS[:2], (lambda r: r.params, lambda r: r.xla_flops),
                                 ("parameters", "XLA FLOPs per image (forward)")):
        _plot(rows, x_of, title, run_dir / name, log_x=True)
    untimed = [r.variant for r in rows if r.seeds and not r.timed]
    _plot([r for r in rows if r.timed], lambda r: r.train_time_s, "training time per run (s)",
          run_dir / PLOTS[2], log_x=False,
          note=f"left out, their clocks not speed figures: {', '.join(untimed)}"
          if untimed else "")
    _curves(rows, run_dir / PLOTS[3])
    commands = (run_dir / "command.txt").read_text().split("\n") \
        if (run_dir / "command.txt").is_file() else []
    config = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else ""
    diverged = [f"- {r['variant']} seed {r['seed']}: {r.get('error', 'diverged')}"
                for r in found if not finished(r)]
    others = left_out(run_dir)
    text = "\n".join([
        f"# {run_dir.name}", "",
        *[f"- command: `{c}`" for c in commands if c.strip()],
        f"- report built: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        *provenance.describe(found), *settings(_config(run_dir)), "",
        table(rows), "",
        "Test accuracy after the last epoch; best epoch: the highest seed-averaged validation "
        "accuracy (test accuracy when there is no validation split, or the last epoch where "
        "that split is missing and the test set was evaluated only at the end). MACs are "
        "the textbook count and XLA FLOPs XLA's cost_analysis of one image's forward pass; train "
        "time and images/s exclude compilation.", "", *clock_notes(found), "",
        "## Which differences exceed seed noise", "", *seed_noise(found),
        *comparison(run_dir, found),
        *(["Diverged runs (recorded, not averaged; a rerun skips them):", *diverged, ""]
          if diverged else []),
        *([f"Runs on disk not in config.yaml, left out: {', '.join(others)}", ""]
          if others else []),
        *[f"![{p}]({p})" for p in PLOTS], "",
        "## Resolved config", "", "```yaml", config.rstrip(), "```", ""])
    atomic_write_text(run_dir / "report.md", text)
    return rows, run_dir / "report.md"
