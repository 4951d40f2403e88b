"""Rerun one committed row from its recorded commit and compare it with the committed files.

    python experiments/rerun_row.py experiments/results/fashion_mnist/onednn_parity/\\
        bottlenecks-native/fire/seed-0 [--workdir DIR]

Reads the row's ``result.json`` (commit, command, variant, seed), clones this repository at that
commit into the work folder, sets it up as the README does (``make .venv/.installed``, which
builds the native extension where it can), reruns the recorded command for that one variant and
seed into the work folder (``--variant``, ``--seed``, ``output_dir`` outside the repository),
and compares the two runs: the formulation choices in ``result.json``, and ``metrics.jsonl``
line by line, every field but the two clock readings (``train_time_s``, ``images_per_second``).
Prints a Markdown summary; exits 1 on any difference. A row whose commit says ``+dirty`` is
refused: its code is not in git.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parents[1]
CLOCK = ("train_time_s", "images_per_second")


def recorded_run(row: pathlib.Path) -> tuple[dict, dict[str, str], list[str]]:
    """The row's ``result.json``, and its command split into environment and arguments."""
    result = json.loads((row / "result.json").read_text())
    commit = result["provenance"]["commit"]
    # every process that trained a part of it (`segments`, where recorded)
    commits = [commit, *(s.get("commit", "") for s in result.get("segments") or ())]
    dirty = [c for c in commits if c.endswith("+dirty")]
    if dirty:
        raise SystemExit(f"rerun_row: {row} was trained from a dirty tree ({dirty[0]}); "
                         "its code is not in git, so it cannot be rerun")
    words = shlex.split(result["command"])
    env = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    if words[:2] != ["jaxconv", "run"]:
        raise SystemExit(f"rerun_row: {row}'s command is not a `jaxconv run`: {result['command']}")
    return result, env, words[2:]


def metric_differences(recorded: list[dict], rerun: list[dict]) -> list[str]:
    """Where two ``metrics.jsonl`` files differ, clock readings aside; empty when they agree."""
    if len(recorded) != len(rerun):
        return [f"{len(recorded)} lines recorded, {len(rerun)} rerun"]
    found = []
    for number, (a, b) in enumerate(zip(recorded, rerun), 1):
        a, b = ({k: v for k, v in line.items() if k not in CLOCK} for line in (a, b))
        if a != b:
            keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
            found.append(f"line {number}: " + ", ".join(
                f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in keys))
    return found


def read_lines(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def sh(*command: str, **kwargs) -> None:
    subprocess.run(command, check=True, **kwargs)


def workspace(work: pathlib.Path, commit: str) -> tuple[pathlib.Path, pathlib.Path]:
    """``work``'s clone of this repository at ``commit`` (made when absent) and the empty
    folder the rerun goes to; a clone at another commit, or a folder holding an earlier rerun,
    is refused rather than reused."""
    clone, out = work / "clone", work / "runs"
    if not clone.exists():
        sh("git", "clone", "--quiet", "--no-checkout", str(REPO), str(clone))
        sh("git", "-C", str(clone), "checkout", "--quiet", commit)
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    if not head.startswith(commit):
        raise SystemExit(f"rerun_row: {clone} is at {head[:12]}, not the row's commit {commit}; "
                         "name another --workdir")
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"rerun_row: {out} holds an earlier rerun; remove it first")
    return clone, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("row", type=pathlib.Path, help="a run folder holding result.json")
    parser.add_argument("--workdir", type=pathlib.Path, help="where the clone and the rerun go "
                        "(default: a new temporary folder, kept)")
    args = parser.parse_args(argv)
    row = args.row.resolve()
    result, env, run_args = recorded_run(row)
    commit = result["provenance"]["commit"]
    work = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="rerun-row-"))
    clone, out = workspace(work, commit)
    sh("make", "--no-print-directory", "-C", str(clone), ".venv/.installed")
    variant, seed = result["variant"], result["seed"]
    command = [str(clone / ".venv/bin/jaxconv"), "run", *run_args, "--variant", variant,
               "--seed", str(seed), "--set", f"output_dir={out}"]
    sh(*command, cwd=clone, env={**os.environ, **env})

    rerun_rows = [p.parent for p in out.glob(f"*/{variant}/seed-{seed}/result.json")]
    if len(rerun_rows) != 1:
        raise SystemExit(f"rerun_row: expected one rerun of {variant} seed {seed} under {out}, "
                         f"found {len(rerun_rows)}")
    rerun = json.loads((rerun_rows[0] / "result.json").read_text())
    problems = metric_differences(read_lines(row / "metrics.jsonl"),
                                  read_lines(rerun_rows[0] / "metrics.jsonl"))
    if rerun["choices"] != result["choices"]:
        problems.insert(0, "the formulation choices differ")
    lines = len(read_lines(row / "metrics.jsonl"))
    print(f"| row | `{row.relative_to(REPO) if row.is_relative_to(REPO) else row}` |\n"
          f"|---|---|\n"
          f"| commit | {commit} |\n"
          f"| recorded | {result['provenance']['cpu']}, {result['provenance']['date']} |\n"
          f"| rerun | {rerun['provenance']['cpu']}, {rerun['provenance']['date']} |\n"
          f"| versions | {rerun['provenance']['versions']} |\n"
          f"| metrics.jsonl | {lines} lines, every field but {' and '.join(CLOCK)}: "
          f"{'identical' if not problems else 'DIFFERENT'} |\n"
          f"| formulation choices | "
          f"{'identical' if rerun['choices'] == result['choices'] else 'DIFFERENT'} |")
    for problem in problems[:20]:
        print(f"- {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
