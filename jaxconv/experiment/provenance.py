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
#: What a ``result.json`` from before recorded choices (schema version 1) shows instead.
NOT_RECORDED = "not recorded (result.json schema 1)"


def _git(*args: str, cwd: pathlib.Path) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True,
                          timeout=10, cwd=cwd).stdout.strip()


def git_commit() -> str:
    """The git commit of the checkout the package is imported from (``+dirty`` with changes to
    tracked files), or the installed version when it does not come from its own checkout."""
    package = pathlib.Path(__file__).resolve().parents[1]
    try:
        if pathlib.Path(_git("rev-parse", "--show-toplevel", cwd=package)).resolve() != \
                package.parent:
            raise OSError("not the package's own checkout")
        dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=package)
        return _git("rev-parse", "--short", "HEAD", cwd=package) + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib import metadata

        try:
            return f"jaxconv {metadata.version('jaxconv')} (no git checkout)"
        except metadata.PackageNotFoundError:
            return "unknown"


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


def describe(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown lines: the provenance and choices all runs share, or a warning and one line per
    distinct combination with the runs it covers."""
    names = (*COMPARED, "choices")
    groups: dict[tuple, list[str]] = {}
    for r in records:
        prov = r.get("provenance") or {}
        key = (*(prov.get(k, "not recorded") for k in COMPARED), choices(r))
        groups.setdefault(key, []).append(f"{r['variant']}/seed-{r['seed']}")
    dates = sorted(r["provenance"]["date"] for r in records
                   if (r.get("provenance") or {}).get("date"))
    span = f"- trained: {dates[0]} to {dates[-1]}" if dates else "- trained: not recorded"
    if len(groups) == 1:
        (key,) = groups
        return [f"- {name}: {value}" for name, value in zip(names, key)] + [span]
    lines = [f"- **warning: these runs come from {len(groups)} different code versions, "
             "package versions, machines or choices; differences between variants may be "
             "differences between them**", span]
    for key, runs in groups.items():
        where = "; ".join(f"{name} {value}" for name, value in zip(names, key))
        lines.append(f"  - {where}: {', '.join(runs)}")
    return lines
