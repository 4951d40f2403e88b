"""Where a run's numbers come from: code, versions and machine, stored in its ``result.json``.

A study's runs may be trained over several sessions and machines; the report states what each
run was trained with and flags a study whose runs disagree, instead of labelling old numbers
with the machine the report happens to be built on.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import platform
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

#: The provenance keys that must agree for runs to be compared as one study.
COMPARED = ("commit", "versions", "cpu", "backend")
#: The mark `git_commit` puts after a commit with uncommitted changes to tracked files.
DIRTY = "+dirty"
#: What a ``result.json`` from before recorded choices (schema version 1) shows instead.
NOT_RECORDED = "not recorded (result.json schema 1)"


def _git(*args: str, cwd: pathlib.Path) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                          timeout=10, cwd=cwd).stdout.strip()


#: Where committed studies keep their runs, relative to the checkout's top.
RESULTS = "experiments/results"


def git_commit(checkout: pathlib.Path | None = None) -> str:
    """The git commit of ``checkout`` (by default the checkout the package is imported from),
    with ``+dirty`` when tracked files outside `RESULTS` have uncommitted changes (the results
    of committed studies are what runs write, not code: resuming or extending a study changes
    them); for a package that does not come from its own checkout, the installed version."""
    package = pathlib.Path(__file__).resolve().parents[1]
    where = package if checkout is None else pathlib.Path(checkout)
    try:
        if checkout is None and pathlib.Path(
                _git("rev-parse", "--show-toplevel", cwd=package)).resolve() != package.parent:
            raise OSError("not the package's own checkout")
        dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ":/",
                     f":(top,exclude){RESULTS}", cwd=where)
        return _git("rev-parse", "--short", "HEAD", cwd=where) + (DIRTY if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib import metadata

        try:
            return f"jaxconv {metadata.version('jaxconv')} (no git checkout)"
        except metadata.PackageNotFoundError:
            return "unknown"


def is_dirty(commit: str) -> bool:
    """Whether a recorded commit came from a tree with uncommitted changes."""
    return commit.endswith(DIRTY)


def committed_folder(path: str | pathlib.Path) -> bool:
    """Whether files written under ``path`` would be committed: it lies inside a git work tree
    that does not ignore it (a study folder under ``experiments/results/``, not ``runs/``)."""
    path = pathlib.Path(path).resolve()
    existing = next(p for p in (path, *path.parents) if p.is_dir())
    try:
        top = _git("rev-parse", "--show-toplevel", cwd=existing)
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path / "result.json")],
                                 capture_output=True, timeout=10, cwd=top)
    except (OSError, subprocess.SubprocessError):
        return False
    return ignored.returncode == 1


def check_clean(run_dir: str | pathlib.Path, commit: str, allow_dirty: bool = False) -> None:
    """Refuses to train a study (a run folder whose files would be committed, see
    `committed_folder`) from code with uncommitted changes, unless ``allow_dirty``: a study's
    runs must be reproducible from a commit.

    Raises:
      ValueError: ``commit`` is dirty, ``run_dir`` is a study folder and not ``allow_dirty``.
    """
    if allow_dirty or not is_dirty(commit) or not committed_folder(run_dir):
        return
    raise ValueError(
        f"{run_dir}: a study folder (its files are committed, not git-ignored) would get runs "
        f"from a tree with uncommitted changes (commit {commit}); commit them first so the "
        "runs can be rerun from their commit, or pass --allow-dirty (the report then says "
        "which runs came from a dirty tree)")


def current() -> dict[str, str]:
    """This process's provenance: commit, versions, CPU, backend and devices, date."""
    import flax
    import jax
    import jaxlib
    import optax

    from jaxconv.tuning import machine

    return {
        "commit": git_commit(),
        "versions": f"Python {platform.python_version()}, jax {jax.__version__}, jaxlib "
                    f"{jaxlib.__version__}, flax {flax.__version__}, optax {optax.__version__}",
        "cpu": f"{machine.model()} ({machine.isa()}, {os.cpu_count()} cores)",
        "backend": f"{jax.device_count()} {jax.default_backend()} device(s)",
        "date": f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
    }


def choices(record: Mapping[str, Any]) -> str:
    """A run's recorded choices in one line (`jaxconv.train.options.choices`), or
    `NOT_RECORDED` for a ``result.json`` that predates them."""
    from jaxconv.train import options

    recorded = record.get("choices")
    if not recorded:
        return NOT_RECORDED
    policy = recorded.get("policy_version")
    return (f"{options.describe(recorded)} (train.compile_options {recorded['requested']})"
            + (f", formulation policy version {policy}" if policy is not None else ""))


def _processes(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The processes that trained ``record``'s run (its ``segments``), led by one whose commit is
    not recorded where the first recorded process resumed a run that a process from before
    ``segments`` existed had started; ``[]`` for a record without them."""
    segments = list(record.get("segments") or ())
    if segments and segments[0].get("from_step", 0) > 0:
        segments.insert(0, {"from_step": 0, "commit": "a process not recorded"})
    return segments


def _every_process(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """``record``'s provenance (its last process) and each of its ``segments``."""
    return [record.get("provenance") or {}, *(record.get("segments") or ())]


def _segments(segments: Sequence[Mapping[str, Any]]) -> str:
    """``"from step 0 at 42db8ef ..., from step 2600 at a365305 ..."``, each process's commit,
    versions, CPU and backend."""
    return ", ".join(f"from step {s.get('from_step')} at "
                     + " ".join(str(s.get(k, "not recorded")) for k in COMPARED if k in s)
                     for s in segments)


def describe(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown lines: the provenance and choices all runs share, or a warning and one line per
    distinct combination with the runs it covers."""
    names = (*COMPARED, "choices")
    groups: dict[tuple, list[str]] = {}
    for r in records:
        prov = r.get("provenance") or {}
        key = (*(prov.get(k, "not recorded") for k in COMPARED), choices(r))
        groups.setdefault(key, []).append(f"{r['variant']}/seed-{r['seed']}")
    dates = sorted(p["date"] for r in records for p in _every_process(r) if p.get("date"))
    # a run's date is when the `jaxconv run` process that trained it started (one process
    # may train many runs one after another)
    span = (f"- started (the `jaxconv run` processes that trained these runs): {dates[0]} to "
            f"{dates[-1]}" if dates else "- started: not recorded")
    dirty = [f"{r['variant']}/seed-{r['seed']}" for r in records
             if any(is_dirty(p.get("commit", "")) for p in _every_process(r))]
    notes = [span] + ([f"- **uncommitted changes: {', '.join(dirty)} trained from a tree "
                       "with uncommitted changes (commit +dirty); their commit alone cannot "
                       "rerun them**"] if dirty else [])
    histories = [(r, _processes(r)) for r in records]
    mixed = [f"{r['variant']}/seed-{r['seed']} ({_segments(segments)})"
             for r, segments in histories
             if len({tuple(s.get(k) for k in COMPARED) for s in segments}) > 1]
    if mixed:
        notes.append("- resumed under another commit, package versions, CPU or backend (each "
                     "process's first step, commit, versions, CPU and backend; the run's "
                     f"provenance is its last process's): {'; '.join(mixed)}")
    if len(groups) == 1:
        (key,) = groups
        return [f"- {name}: {value}" for name, value in zip(names, key)] + notes
    lines = [f"- **warning: these runs come from {len(groups)} different code versions, "
             "package versions, machines or choices; differences between variants may be "
             "differences between them**", *notes]
    for key, runs in groups.items():
        where = "; ".join(f"{name} {value}" for name, value in zip(names, key))
        lines.append(f"  - {where}: {', '.join(runs)}")
    return lines
