"""Test accuracy with and without the native extension, design by design and seed by seed
(`experiments/onednn_parity.sh` trains both): the native run's accuracy minus the lax run's,
and whether every pair lies within 0.5 points. Each run's `result.json` says whether the
extension ran (``choices.native``), so a pair that did not differ in it is flagged; a run
without its pair, one that did not finish, or a study with no pairs at all fails the check.

Where the control runs exist (`experiments/onednn_parity_control.sh`: the lax path again
without jaxconv's recommended XLA flags, so that only the rounding differs), their differences
from the lax runs are set beside, with the spread of both kinds of difference: how far apart
one epoch leaves two runs that compute the same function with different bits.

Run: ``.venv/bin/python experiments/onednn_parity.py [FOLDER]``
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys

from jaxconv.experiment import report

FOLDER = pathlib.Path("experiments/results/fashion_mnist/onednn_parity")
LIMIT = 0.5
STUDIES = ("bottlenecks", "quickstart")


def accuracies(study: pathlib.Path) -> dict[tuple[str, int], tuple[float, bool, str]]:
    """``(variant, seed) -> (test accuracy in %, whether the extension ran, XLA flags)`` of a
    study folder's runs; a run that did not finish (diverged) has accuracy NaN, so
    it fails."""
    found = {}
    for path in sorted(study.glob("*/seed-*/result.json")):
        result = json.loads(path.read_text())
        finished = report.finished(result) and result.get("history")
        choices = result.get("choices", {})
        found[result["variant"], result["seed"]] = (
            100 * result["history"][-1]["test_accuracy"] if finished else float("nan"),
            bool(choices.get("native", {}).get("available")), choices.get("xla_flags") or "")
    return found


def spread(differences: list[float]) -> str:
    """One line on a list of paired differences (points): their count, mean, standard
    deviation, largest size and how many exceed `LIMIT`; pairs with a run that did not finish
    are counted apart."""
    unfinished = sum(d != d for d in differences)
    differences = [d for d in differences if d == d]
    note = f" ({unfinished} more with a run that did not finish)" if unfinished else ""
    if len(differences) < 2:
        return f"{len(differences)} pair(s){note}: too few for a spread"
    over = sum(abs(d) > LIMIT for d in differences)
    return (f"{len(differences)} pairs{note}: mean {statistics.mean(differences):+.2f}, standard "
            f"deviation {statistics.stdev(differences):.2f}, largest "
            f"{max(map(abs, differences)):.2f} points; {over} over {LIMIT}")


def parity(folder: pathlib.Path, runs: str, study: str) -> tuple[list[str], list[float], bool]:
    """The section of the native runs ``runs`` (a folder such as ``bottlenecks-native-v4``)
    against ``study``'s lax runs: markdown lines, the differences, and whether every pair is
    within `LIMIT` points with the extension used as intended."""
    native = accuracies(folder / runs)
    lax = accuracies(folder / f"{study}-lax")
    pairs = sorted(set(native) & set(lax))
    lines = [f"## {runs}: {len(pairs)} pairs", "",
             f"| variant | seed | with onednn | lax only | difference | within {LIMIT} |",
             "|---|---:|---:|---:|---:|---|"]
    ok, differences = bool(pairs), []
    for key in pairs:
        (a, ran, _), (b, lax_ran, _) = native[key], lax[key]
        within = abs(a - b) <= LIMIT and ran and not lax_ran
        ok &= within
        differences.append(a - b)
        flag = "" if ran and not lax_ran else " (extension use not as intended)"
        lines.append(f"| {key[0]} | {key[1]} | {a:.2f} % | {b:.2f} % | {a - b:+.2f} | "
                     f"{'yes' if within else 'no'}{flag} |")
    missing = sorted(set(native) ^ set(lax))
    ok &= not missing
    lines += ["", *([f"Unpaired runs: {missing}", ""] if missing else [])]
    return lines, differences, ok


def control(folder: pathlib.Path, study: str) -> tuple[list[str], list[float]]:
    """The lax-versus-lax section of ``study`` (control runs minus lax runs, both without the
    extension, the control under other XLA flags), or nothing without control runs."""
    runs = accuracies(folder / f"{study}-control")
    lax = accuracies(folder / f"{study}-lax")
    pairs = sorted(set(runs) & set(lax))
    if not pairs:
        return [], []
    lines = [f"### control: {len(pairs)} pairs", "",
             "| variant | seed | lax, XLA's own flags | lax only | difference | within "
             f"{LIMIT} |", "|---|---:|---:|---:|---:|---|"]
    differences = []
    for key in pairs:
        (a, ran, flags), (b, lax_ran, lax_flags) = runs[key], lax[key]
        intended = not ran and not lax_ran and flags != lax_flags
        differences.append(a - b)
        flag = "" if intended else " (not a control: the extension ran or the flags agree)"
        within = "yes" if abs(a - b) <= LIMIT else "no"
        lines.append(f"| {key[0]} | {key[1]} | {a:.2f} % | {b:.2f} % | {a - b:+.2f} | "
                     f"{within}{flag} |")
    return [*lines, ""], differences


def table(folder: pathlib.Path) -> tuple[list[str], bool]:
    """Markdown lines, and whether every native-versus-lax pair is within `LIMIT` points: one
    section per folder of native runs (``<study>-native`` for policy version 3,
    ``<study>-native-v<N>`` for later ones), then the control's."""
    lines, ok = [], True
    for study in STUDIES:
        runs = sorted(path.name for path in folder.glob(f"{study}-native*") if path.is_dir())
        spreads = []
        for name in runs or [f"{study}-native"]:
            section, differences, runs_ok = parity(folder, name, study)
            ok &= runs_ok
            lines += section
            spreads.append(f"Spread, {name} minus lax only: {spread(differences)}.")
        checked, controls = control(folder, study)
        lines += checked
        if controls:
            lines += [*spreads, f"Spread, lax under XLA's own flags minus lax only: "
                      f"{spread(controls)}.", ""]
    return lines, ok


def main() -> int:
    folder = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER
    lines, ok = table(folder)
    print("\n".join(lines))
    print(f"every pair within {LIMIT} points: {'yes' if ok else 'no'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
