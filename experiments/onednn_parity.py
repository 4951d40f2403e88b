"""Test accuracy with and without the native extension, design by design and seed by seed
(`experiments/onednn_parity.sh` trains both): the native run's accuracy minus the lax run's,
and whether every pair lies within 0.5 points. Each run's `result.json` says whether the
extension ran (``choices.native``), so a pair that did not differ in it is flagged; a run
without its pair, one that did not finish, or a study with no pairs at all fails the check.

Run: ``.venv/bin/python experiments/onednn_parity.py [FOLDER]``
"""

from __future__ import annotations

import json
import pathlib
import sys

from jaxconv.experiment import report

FOLDER = pathlib.Path("experiments/results/fashion_mnist/onednn_parity")
LIMIT = 0.5


def accuracies(study: pathlib.Path) -> dict[tuple[str, int], tuple[float, bool]]:
    """``(variant, seed) -> (test accuracy in %, whether the extension ran)`` of a study
    folder's runs; a run that did not finish (diverged) has accuracy NaN, so it fails."""
    found = {}
    for path in sorted(study.glob("*/seed-*/result.json")):
        result = json.loads(path.read_text())
        finished = report.finished(result) and result.get("history")
        native = bool(result.get("choices", {}).get("native", {}).get("available"))
        found[result["variant"], result["seed"]] = (
            100 * result["history"][-1]["test_accuracy"] if finished else float("nan"), native)
    return found


def table(folder: pathlib.Path) -> tuple[list[str], bool]:
    """Markdown lines, and whether every pair is within `LIMIT` points."""
    lines, ok = [], True
    for study in ("bottlenecks", "quickstart"):
        native = accuracies(folder / f"{study}-native")
        lax = accuracies(folder / f"{study}-lax")
        pairs = sorted(set(native) & set(lax))
        lines += [f"## {study}: {len(pairs)} pairs", "",
                  "| variant | seed | with onednn | lax only | difference | within "
                  f"{LIMIT} |", "|---|---:|---:|---:|---:|---|"]
        for key in pairs:
            (a, ran), (b, lax_ran) = native[key], lax[key]
            within = abs(a - b) <= LIMIT and ran and not lax_ran
            ok &= within
            flag = "" if ran and not lax_ran else " (extension use not as intended)"
            lines.append(f"| {key[0]} | {key[1]} | {a:.2f} % | {b:.2f} % | {a - b:+.2f} | "
                         f"{'yes' if within else 'no'}{flag} |")
        missing = sorted(set(native) ^ set(lax))
        ok &= bool(pairs) and not missing
        lines += ["", *([f"Unpaired runs: {missing}", ""] if missing else [])]
    return lines, ok


def main() -> int:
    folder = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER
    lines, ok = table(folder)
    print("\n".join(lines))
    print(f"every pair within {LIMIT} points: {'yes' if ok else 'no'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
