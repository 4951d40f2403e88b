"""The lever screen's trials as one Markdown table, each paired with the baseline by seed.

    python experiments/lever_table.py [RESULTS_DIR]

Reads ``<RESULTS_DIR>/levers-*/`` (default ``experiments/results/fashion_mnist/levers``, written
by ``experiments/lever_screen.sh``): each trial's ``config.yaml`` (what it changed against its
baseline), its finished ``result.json`` files and their ``metrics.jsonl``. Every seed of every
trial validates on the same split, so a trial's seed ``k`` and its baseline's seed ``k`` differ
only by the lever: the table reports the paired difference of their final validation
accuracies with its standard error, a paired t-test, the Holm-adjusted p over every trial in
the table but the baselines, and whether the gain is kept (larger than two standard errors),
in airbench's form with the epochs and training seconds to 94% validation accuracy. The
seconds are the steps to the end of the first epoch at 94% times the trial's seconds per step
timed alone (``<RESULTS_DIR>/step_seconds.json``, written by
``experiments/lever_step_seconds.py``; "other formulations" where the timed steps were built
under other choices than the runs): the runs' own clocks are not used, since runs timed in
different sittings do not compare and not every run had its cores to itself. Only validation
accuracy is read: the test accuracy the runner records is never shown, so it cannot choose a
lever.

Seeds that diverged are counted in the table, and a trial with one is never kept. A pairing
only isolates the lever when both runs ran the same program: where a trial's runs and its
baseline's paired runs differ in commit, jaxlib version, CPU class or recorded choices
(``result.json``'s ``provenance`` and ``choices``), the trial's note says so, a line under the
table names the values, and it is not kept. So the baseline can be trained again where later
trials run: a ``levers-baseline-<tag>/`` folder, the baseline's recipe under another name (a
setting it gives another value than ``levers-baseline`` does is refused; one it adds, which
later code records, is named under the table). Each trial pairs with the baseline whose runs
differ least from its own (none, where they ran the same program; ``levers-baseline`` first,
then the others by name, on a tie), the table names it and groups the trials by it, and a line
under the table says where each baseline ran. Seeds a trial has and its baseline lacks are
counted as unpaired.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import re
import sys
from collections.abc import Mapping, Sequence

import numpy as np
import yaml

from jaxconv.analysis.tables import markdown_table
from jaxconv.experiment import report

BASELINE = "baseline"
#: What must agree between a trial's paired runs and the baseline's for the pairing to hold.
COMPARED = ("commit", "jaxlib", "cpu", "choices")
NOT_RECORDED = "not recorded"
#: Paired differences this close (in accuracy, a fraction) are equal: float rounding apart.
EQUAL = 1e-12
PREFIX = "levers-"
TARGET = 0.94


@dataclasses.dataclass(frozen=True)
class Paired:
    """A trial against the baseline over the seeds both finished (accuracies as fractions)."""

    seeds: tuple[int, ...]
    mean_difference: float
    standard_error: float
    p_value: float


def is_baseline(name: str) -> bool:
    """Whether a trial name is a baseline's: `BASELINE`, or a rerun of it (``baseline-<tag>``)."""
    return name == BASELINE or name.startswith(f"{BASELINE}-")


def paired(trial: Mapping[int, float], baseline: Mapping[int, float]) -> Paired:
    """The per-seed differences ``trial[k] - baseline[k]`` over the seeds in both: their mean,
    its standard error (std with ``ddof=1`` over ``sqrt(n)``) and the two-sided paired t-test's
    p (`scipy.stats.ttest_rel`). NaN where fewer than two seeds pair, or p where every
    difference is the same (to within `EQUAL`, the standard error then 0)."""
    from scipy import stats

    seeds = tuple(sorted(set(trial) & set(baseline)))
    a = np.array([trial[k] for k in seeds], dtype=float)
    b = np.array([baseline[k] for k in seeds], dtype=float)
    if len(seeds) < 2:
        mean = float((a - b).mean()) if seeds else math.nan
        return Paired(seeds, mean, math.nan, math.nan)
    differences = a - b
    # accuracies are fractions of one validation set read back from JSON: differences equal
    # but for rounding (1e-17 apart) are equal, not a t of 1e15
    if np.ptp(differences) <= EQUAL:
        return Paired(seeds, float(differences.mean()), 0.0, math.nan)
    se = float(differences.std(ddof=1)) / math.sqrt(len(seeds))
    p = float(stats.ttest_rel(a, b).pvalue) if se > 0 else math.nan
    return Paired(seeds, float(differences.mean()), se, p)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``p_values`` (Holm 1979), in their order: the ``i``-th
    smallest of the ``m`` finite values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    NaNs (no test) stay NaN and do not count in ``m``."""
    finite = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    for i in finite:
        if not 0 <= p_values[i] <= 1:
            raise ValueError(f"p_values[{i}]: {p_values[i]!r} is not a probability in [0, 1]")
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(finite, key=lambda i: p_values[i])):
        running = max(running, min(1.0, (len(finite) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def family_p(result: Paired) -> float:
    """The p that counts in Holm's family: the t-test's, or 1 where two or more seeds pair and
    every difference is the same (no spread, so no test: it must not vanish from the family)."""
    if math.isnan(result.p_value) and len(result.seeds) >= 2:
        return 1.0
    return result.p_value


#: The fewest paired seeds a trial is judged on (the screen's rule: three or more).
MIN_SEEDS = 3


def kept(result: Paired) -> bool:
    """Whether the paired gain exceeds two standard errors of the paired difference over
    `MIN_SEEDS` or more paired seeds (a trial still training is not judged yet) with a p (equal
    differences have none and are never kept)."""
    return len(result.seeds) >= MIN_SEEDS and not math.isnan(result.standard_error) and \
        not math.isnan(result.p_value) and result.mean_difference > 2 * result.standard_error


def first_reaching(epochs: Sequence[Mapping], target: float = TARGET) -> tuple[int, int] | None:
    """The first epoch record (``kind: epoch`` lines of ``metrics.jsonl``) whose validation
    accuracy reaches ``target``: its epoch and the training steps taken by its end; None if
    none does."""
    for record in sorted(epochs, key=lambda r: r["epoch"]):
        if record["val_accuracy"] >= target:
            return int(record["epoch"]), int(record["step"])
    return None


STEP_SECONDS = "step_seconds.json"


@dataclasses.dataclass(frozen=True)
class StepSeconds:
    """Seconds per training step of each trial, timed in one sitting with nothing else on the
    cores (``experiments/lever_step_seconds.py``): the median per trial, the formulation
    choices the timed steps were built under, the CPU, commit and date, and the largest spread
    of a trial's rounds (max over min)."""

    seconds: dict[str, float]
    choices: dict[str, dict]
    machine: str
    spread: float


def step_seconds(results: pathlib.Path) -> StepSeconds | None:
    """The timings in ``<results>/step_seconds.json``; None where the file is missing."""
    path = results / STEP_SECONDS
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    try:
        trials = record["trials"]
        seconds = {k: float(t["seconds_per_step"]) for k, t in trials.items()}
        choices = {k: dict(t["choices"]) for k, t in trials.items()}
        spread = max((max(t["rounds"]) / min(t["rounds"]) for t in trials.values()),
                     default=1.0)
        machine = f"{record['cpu']}, commit {record['commit']}, {record['date']}"
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
        raise ValueError(f"{path}: {error!r}; expected the file experiments/"
                         "lever_step_seconds.py writes (cpu, commit, date, and trials of "
                         "seconds_per_step, rounds and choices)") from None
    return StepSeconds(seconds, choices, machine, spread)


def timed_as_trained(timed_choices: Mapping, runs: Trial) -> bool:
    """Whether the timed steps were built under the choices every run of the trial recorded
    (compared on the keys the runs recorded: later code may record more)."""
    for origin in runs.origins.values():
        if origin["choices"] == NOT_RECORDED:
            return False
        recorded = json.loads(origin["choices"])
        if any(timed_choices.get(key) != value for key, value in recorded.items()):
            return False
    return bool(runs.origins)


def epoch_records(path: pathlib.Path) -> list[dict]:
    """The epoch records of a ``metrics.jsonl`` (none when the file is missing)."""
    if not path.is_file():
        return []
    lines = (json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return [r for r in lines if r.get("kind") == "epoch" and "val_accuracy" in r]


def origin(result: Mapping) -> dict[str, str]:
    """What a run ran on, for `COMPARED`: its commit, jaxlib version, CPU and choices (each
    `NOT_RECORDED` where the ``result.json`` lacks it)."""
    prov = result.get("provenance") or {}
    jaxlib = re.search(r"jaxlib ([^,\s]+)", prov.get("versions", ""))
    recorded = result.get("choices")
    return {"commit": prov.get("commit", NOT_RECORDED),
            "jaxlib": jaxlib.group(1) if jaxlib else NOT_RECORDED,
            "cpu": prov.get("cpu", NOT_RECORDED),
            "choices": json.dumps(recorded, sort_keys=True) if recorded else NOT_RECORDED}


@dataclasses.dataclass(frozen=True)
class Trial:
    """A trial's resolved config (`_settings`), its finished seeds (final validation accuracy,
    the first reach of `TARGET`, what each ran on) and the seeds that diverged."""

    name: str
    settings: dict
    accuracy: dict[int, float]
    reached: dict[int, tuple[int, int] | None]
    origins: dict[int, dict[str, str]] = dataclasses.field(default_factory=dict)
    diverged: tuple[int, ...] = ()


def differences(t: Trial, base: Trial, seeds: Sequence[int]) -> dict[str, tuple[list, list]]:
    """The `COMPARED` keys on which the runs do not all agree: the baseline's paired runs
    (``seeds``) and every finished run of the trial (a trial whose own seeds ran different
    programs never pairs cleanly), key -> (the baseline's values, the trial's values), each
    sorted."""
    found = {}
    for key in COMPARED:
        ours = sorted({o.get(key, NOT_RECORDED) for o in t.origins.values()})
        theirs = sorted({base.origins.get(k, {}).get(key, NOT_RECORDED) for k in seeds})
        if len(set(ours) | set(theirs)) > 1:
            found[key] = (theirs, ours)
    return found


def _settings(folder: pathlib.Path) -> dict:
    """The trial's resolved config flattened to dotted keys (``train.ema_decay``, ...)."""
    path = folder / "config.yaml"
    if not path.is_file():
        return {}

    def flat(node, prefix):
        if isinstance(node, dict):
            return {k: v for key, value in node.items()
                    for k, v in flat(value, f"{prefix}{key}.").items()}
        if isinstance(node, list):
            return {k: v for i, value in enumerate(node)
                    for k, v in flat(value, f"{prefix[:-1]}[{i}].").items()}
        return {prefix[:-1]: node}

    config = yaml.safe_load(path.read_text())
    return {k: v for k, v in flat(config, "").items() if k != "name"}


def change(settings: Mapping, baseline: Mapping) -> str:
    """The keys whose values differ from the baseline's, ``key=value`` (YAML spelling)."""
    def text(value):
        return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()

    keys = sorted(k for k in set(settings) | set(baseline) if settings.get(k) != baseline.get(k))
    return ", ".join(f"{k}={text(settings.get(k))}" for k in keys)


def trial(folder: pathlib.Path) -> Trial:
    """One trial folder's config and finished runs (the config's variant, one per seed)."""
    accuracy, reached, origins, diverged = {}, {}, {}, []
    for result in report.results(folder):
        seed = int(result["seed"])
        if not report.finished(result):
            diverged.append(seed)
            continue
        accuracy[seed] = float(result["history"][-1]["val_accuracy"])
        origins[seed] = origin(result)
        metrics = folder / result["variant"] / f"seed-{seed}" / "metrics.jsonl"
        reached[seed] = first_reaching(epoch_records(metrics))
    return Trial(folder.name.removeprefix(PREFIX), _settings(folder), accuracy, reached,
                 origins, tuple(sorted(diverged)))


def _reach_cells(t: Trial, timed: StepSeconds | None) -> list[str]:
    hits = [t.reached[k] for k in sorted(t.reached) if t.reached[k] is not None]
    if not hits:
        return ["not reached", "not reached"]
    share = f" ({len(hits)}/{len(t.reached)} seeds)"
    if timed is None or t.name not in timed.seconds:
        seconds = "not timed"
    elif not timed_as_trained(timed.choices[t.name], t):
        seconds = "not timed (other formulations)"
    else:
        seconds = f"{np.mean([h[1] for h in hits]) * timed.seconds[t.name]:.0f}{share}"
    return [f"{np.mean([h[0] for h in hits]):.1f}{share}", seconds]


def partner(t: Trial, baselines: Sequence[Trial]) -> Trial:
    """The baseline ``t`` pairs with: of ``baselines`` (`BASELINE` first) that share a finished
    seed with it, the one whose runs differ from the trial's in the fewest `COMPARED` keys
    (`differences`; none where they ran the same program), the first on a tie; `BASELINE`
    where none shares a seed."""
    def distance(base):
        seeds = sorted(set(t.accuracy) & set(base.accuracy))
        return len(differences(t, base, seeds)) if seeds else len(COMPARED) + 1

    return min(baselines, key=distance)


def check_rerun(base: Trial, first: Trial) -> dict:
    """The settings a baseline rerun (``baseline-<tag>``) has that the first baseline lacks
    (what later code records, such as ``train.test_eval``); a `ValueError` naming them where
    the two set one key differently, so that a trial named like a rerun cannot pass as one."""
    shared = set(base.settings) & set(first.settings)
    clash = sorted(k for k in shared if base.settings[k] != first.settings[k])
    if clash:
        raise ValueError(f"{PREFIX}{base.name}: " + ", ".join(
            f"{k}={base.settings[k]!r}" for k in clash) + f" where {PREFIX}{BASELINE} has " +
            ", ".join(f"{k}={first.settings[k]!r}" for k in clash) + "; a baseline-<tag> "
            "folder must train the baseline's recipe (name a trial without the prefix)")
    return {k: base.settings[k] for k in sorted(set(base.settings) - shared)}


def _ran_on(base: Trial, added: Mapping) -> str:
    """Where a baseline's runs ran (each `COMPARED` key but the choices), and the settings it
    adds to the first baseline's."""
    def values(key):
        return ", ".join(sorted({o.get(key, NOT_RECORDED) for o in base.origins.values()}))

    extra = f"; its config adds {change(added, {})}" if added else ""
    return (f"- **{base.name}** ran on commit {values('commit')}, CPU {values('cpu')}, "
            f"jaxlib {values('jaxlib')}{extra}.")


def table(trials: Sequence[Trial], timed: StepSeconds | None = None) -> str:
    """The Markdown table: the baselines first, then every other trial with its paired
    comparison against its baseline (`partner`); Holm's adjustment runs over every trial with
    two or more paired seeds. Under it, where each baseline ran (when there are several), a
    line per trial whose paired runs differ from its baseline's (`differences`), and where the
    seconds to 94% come from (``timed``, `step_seconds`; "not timed" without)."""
    baselines = sorted((t for t in trials if is_baseline(t.name)),
                       key=lambda t: (t.name != BASELINE, t.name))
    if not baselines or baselines[0].name != BASELINE:
        raise ValueError(f"trials: {[t.name for t in trials]!r} has no {BASELINE!r} trial to "
                         "pair with")
    added = {b.name: check_rerun(b, baselines[0]) for b in baselines[1:]}
    order = {b.name: i for i, b in enumerate(baselines)}
    others = sorted(((partner(t, baselines), t) for t in trials if not is_baseline(t.name)),
                    key=lambda pair: (order[pair[0].name], pair[1].name))
    partners = [base for base, _ in others]
    others = [t for _, t in others]
    pairs = [paired(t.accuracy, base.accuracy) for t, base in zip(others, partners)]
    adjusted = holm([family_p(p) for p in pairs])
    header = ["trial", "change", "paired with", "val accuracy (mean ± std)",
              "paired difference ± SE", "p (paired t)", "Holm p", "kept", "seeds",
              "epochs to 94% val", "train s to 94% val", "note"]

    def accuracy_cell(t):
        a = 100 * np.array(list(t.accuracy.values()))
        spread = f" ± {a.std(ddof=1):.2f}" if len(a) > 1 else ""
        return f"{a.mean():.2f}{spread} %"

    def number(value, spec):
        return "-" if math.isnan(value) else format(value, spec)

    def seeds_cell(count, total, diverged):
        paired_of = f" of {total} paired" if count != total else ""
        return f"{count}{paired_of}" + (f" ({len(diverged)} diverged)" if diverged else "")

    rows = [[base.name, "(baseline)", "-", accuracy_cell(base), "-", "-", "-", "-",
             seeds_cell(len(base.accuracy), len(base.accuracy), base.diverged),
             *_reach_cells(base, timed), ""] for base in baselines]
    lines = [_ran_on(base, added.get(base.name, {})) for base in baselines] \
        if len(baselines) > 1 else []
    for t, base, p, holm_p in zip(others, partners, pairs, adjusted):
        difference = "-" if not p.seeds else \
            f"{100 * p.mean_difference:+.2f} ± {number(100 * p.standard_error, '.2f')} points"
        differ = differences(t, base, p.seeds)
        if differ:
            lines.append(f"- **{t.name}**: its paired runs and the baseline's differ in " +
                         "; ".join(f"{key} ({base.name} {', '.join(theirs)}; {t.name} "
                                   f"{', '.join(ours)})"
                                   for key, (theirs, ours) in differ.items()))
        note = f"differs in {', '.join(differ)}" if differ else ""
        rows.append([t.name, change(t.settings, base.settings) or "(none)", base.name,
                     accuracy_cell(t), difference,
                     number(p.p_value, ".3f"), number(holm_p, ".3f"),
                     "yes" if kept(p) and not t.diverged and not differ else "no",
                     seeds_cell(len(p.seeds), len(t.accuracy), t.diverged),
                     *_reach_cells(t, timed), note])
    text = markdown_table(header, "lllrrrrlrrrl", rows)
    clock = ("Train s to 94% val: the steps to the end of the first epoch at 94% times the "
             "trial's seconds per training step, timed alone in one sitting "
             f"({timed.machine}; experiments/lever_step_seconds.py; a trial's timed rounds "
             f"spread by up to {100 * (timed.spread - 1):.0f}%, and 94% is known to the epoch, "
             "so a figure can be up to one epoch's steps late)" if timed else
             f"Train s to 94% val: not timed (no {STEP_SECONDS}; "
             "experiments/lever_step_seconds.py times each trial's steps alone)")
    clock += ("; the runs' own clocks are not used: runs timed in different sittings do not "
              "compare, and not every run had its cores to itself.")
    return "\n".join([text, "", *lines, *([""] if lines else []), clock])


def trials(results: pathlib.Path) -> list[Trial]:
    """Every ``levers-*`` trial under ``results`` that has a finished seed."""
    base_dir = results / f"{PREFIX}{BASELINE}"
    if not base_dir.is_dir():
        raise ValueError(f"results: {str(results)!r} has no {base_dir.name}/ folder; expected "
                         "the lever screen's output (experiments/lever_screen.sh)")
    found = [trial(folder) for folder in sorted(results.glob(f"{PREFIX}*")) if folder.is_dir()]
    return sorted((t for t in found if t.accuracy), key=lambda t: not is_baseline(t.name))


if __name__ == "__main__":
    where = pathlib.Path(sys.argv[1] if len(sys.argv) > 1
                         else "experiments/results/fashion_mnist/levers")
    print(table(trials(where), step_seconds(where)))
