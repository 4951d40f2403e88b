"""Test accuracy with and without the native extension, design by design and seed by seed
(`experiments/onednn_parity.sh` trains both): the native run's accuracy minus the lax run's,
and whether every pair lies within 0.5 points. One section per folder of native runs
(``<study>-native`` for policy version 3, ``<study>-native-v<N>`` for later ones), each
against the one set of lax runs. A pair counts only where its runs trained as intended (the
native run with the extension, its folder's policy version and, from version 4 on, BatchNorm's
native sums; the lax run without the extension); a pair that did not is flagged and fails the
check, as does a run without its pair, one that did not finish, or a study with no pairs.

Where the control runs exist (`experiments/onednn_parity_control.sh`: the lax path again with
neither the recommended XLA flags nor the compile options, so that XLA's products go to
YNNPACK and only the rounding differs), their differences from the lax runs are set beside,
with the spread of every kind of difference: how far apart one epoch leaves two runs that
compute the same function with different bits.

Run: ``.venv/bin/python experiments/onednn_parity.py [FOLDER]``
"""

from __future__ import annotations

import json
import pathlib
import re
import statistics
import sys
from typing import NamedTuple

from jaxconv.experiment import report, stats
from jaxconv.functional.policy import NATIVE_BATCH_NORM_SINCE

FOLDER = pathlib.Path("experiments/results/fashion_mnist/onednn_parity")
LIMIT = 0.5
STUDIES = ("bottlenecks", "quickstart")


class Run(NamedTuple):
    """What a pair's check reads of one run's ``result.json``."""

    accuracy: float              # test accuracy in %, NaN where the run did not finish
    native: bool                 # whether the extension was there
    policy_version: int | None
    batch_norm: str
    ynnpack_flag: str
    option_set: str
    commit: str


def runs(study: pathlib.Path) -> dict[tuple[str, int], Run]:
    """``(variant, seed) -> Run`` of a study folder's runs."""
    found = {}
    for path in sorted(study.glob("*/seed-*/result.json")):
        result = json.loads(path.read_text())
        finished = report.finished(result) and result.get("history")
        choices = result.get("choices", {})
        found[result["variant"], result["seed"]] = Run(
            100 * result["history"][-1]["test_accuracy"] if finished else float("nan"),
            bool(choices.get("native", {}).get("available")), choices.get("policy_version"),
            choices.get("batch_norm", ""), choices.get("ynnpack_flag") or "",
            choices.get("option_set", ""), result.get("provenance", {}).get("commit", ""))
    return found


def native_folders(folder: pathlib.Path, study: str) -> list[tuple[str, int]]:
    """``(name, policy version)`` of ``study``'s folders of native runs, oldest version
    first; ``<study>-native`` (version 3) where there are none, so that a study without native
    runs shows as one with no pairs."""
    found = []
    for path in folder.glob(f"{study}-native*"):
        match = re.fullmatch(rf"{study}-native(?:-v([1-9][0-9]*))?", path.name)
        if match and path.is_dir():
            found.append((path.name, int(match.group(1) or 3)))
    return sorted(found, key=lambda item: item[1]) or [(f"{study}-native", 3)]


def spread(differences: list[float], flagged: int = 0) -> str:
    """One line on a list of paired differences (points): their count, mean, standard
    deviation, largest size and how many exceed `LIMIT`, and whether the mean lies within
    +-`LIMIT` by two one-sided t-tests at 5% (its 90% interval inside the margin: the two paths
    train alike on average, which a per-pair bound cannot show where single runs scatter by
    more); pairs with a run that did not finish, and ``flagged`` pairs that did not train as
    intended, are counted apart."""
    unfinished = sum(d != d for d in differences)
    differences = [d for d in differences if d == d]
    apart = [f"{unfinished} more with a run that did not finish"] if unfinished else []
    apart += [f"{flagged} more not trained as intended"] if flagged else []
    note = f" ({'; '.join(apart)})" if apart else ""
    if len(differences) < 2:
        return f"{len(differences)} pair(s){note}: too few for a spread"
    over = sum(abs(d) > LIMIT for d in differences)
    mean = stats.paired(dict(enumerate(differences)), dict.fromkeys(range(len(differences)),
                                                                   0.0), level=0.90)
    equivalent = -LIMIT < mean.low and mean.high < LIMIT
    return (f"{len(differences)} pairs{note}: mean {statistics.mean(differences):+.2f}, standard "
            f"deviation {statistics.stdev(differences):.2f}, largest "
            f"{max(map(abs, differences)):.2f} points; {over} over {LIMIT}; the mean's 90% "
            f"interval {mean.low:+.2f} to {mean.high:+.2f} is "
            f"{'within' if equivalent else 'not within'} +-{LIMIT} (two one-sided tests at 5%)")


def native_problem(run: Run, lax: Run, version: int) -> str:
    """Why a native-versus-lax pair did not train as intended ("" where it did)."""
    if not run.native or lax.native:
        return "extension use not as intended"
    if run.policy_version != version:
        return f"native run at policy version {run.policy_version}, not {version}"
    if version >= NATIVE_BATCH_NORM_SINCE and run.batch_norm != "native channel sums":
        return f"BatchNorm {run.batch_norm or 'not recorded'}, not the native sums"
    return ""


def control_problem(run: Run, lax: Run) -> str:
    """Why a control pair is no control ("" where it is one): both runs must be lax and
    differ in both the YNNPACK flag and the compile-option set (either alone changed no bit)."""
    if run.native or lax.native:
        return "the extension was there"
    if run.ynnpack_flag == lax.ynnpack_flag or run.option_set == lax.option_set:
        return "not a control: same YNNPACK flag or compile options as the lax run"
    return ""


def section(title: str, column: str, pairs: dict, lax: dict, problem
            ) -> tuple[list[str], list[float], int, bool]:
    """A table of ``pairs``'s runs against the lax runs: markdown lines, the differences of
    the pairs that trained as intended, how many did not, and whether every pair trained as
    intended, finished and lies within `LIMIT` with none unpaired."""
    keys = sorted(set(pairs) & set(lax))
    lines = [f"## {title}: {len(keys)} pairs", "",
             f"| variant | seed | {column} | lax only | difference | within {LIMIT} |",
             "|---|---:|---:|---:|---:|---|"]
    ok, differences, flagged = bool(keys), [], 0
    for key in keys:
        a, b = pairs[key].accuracy, lax[key].accuracy
        why = problem(pairs[key], lax[key])
        within = abs(a - b) <= LIMIT
        ok &= within and not why
        if why:
            flagged += 1
        else:
            differences.append(a - b)
        lines.append(f"| {key[0]} | {key[1]} | {a:.2f} % | {b:.2f} % | {a - b:+.2f} | "
                     f"{'yes' if within else 'no'}{f' ({why})' if why else ''} |")
    missing = sorted(set(pairs) ^ set(lax))
    ok &= not missing
    commits = sorted({r.commit for r in pairs.values()}), sorted({r.commit for r in lax.values()})
    lines += ["", *([f"Unpaired runs: {missing}", ""] if missing else []),
              f"Commits: {', '.join(commits[0])} (these runs); {', '.join(commits[1])} (lax).",
              ""]
    return lines, differences, flagged, ok


def table(folder: pathlib.Path) -> tuple[list[str], bool]:
    """Markdown lines, and whether every native-versus-lax pair trained as intended and lies
    within `LIMIT` points (the control's pairs do not decide it)."""
    lines, ok = [], True
    for study in STUDIES:
        lax = runs(folder / f"{study}-lax")
        spreads = []
        for name, version in native_folders(folder, study):
            part, differences, flagged, part_ok = section(
                name, "with onednn", runs(folder / name), lax,
                lambda run, lax_run, version=version: native_problem(run, lax_run, version))
            ok &= part_ok
            lines += part
            spreads.append(f"Spread, {name} minus lax only: {spread(differences, flagged)}.")
        controls = runs(folder / f"{study}-control")
        if controls:
            part, differences, flagged, _ = section(
                f"{study}-control", "lax, XLA's own flags and options", controls, lax,
                control_problem)
            lines += part
            spreads.append(f"Spread, {study}-control minus lax only: "
                           f"{spread(differences, flagged)}.")
        lines += [*spreads, ""]
    return lines, ok


def main() -> int:
    folder = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER
    lines, ok = table(folder)
    print("\n".join(lines))
    print(f"every pair within {LIMIT} points: {'yes' if ok else 'no'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
