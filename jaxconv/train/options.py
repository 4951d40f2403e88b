"""Compile options for the engine's own ``jax.jit``: which set a run uses, and its record.

Three names, three things:

- ``Recipe.compile_options`` (the config key ``train.compile_options``): what the user asks
  for, ``"auto"``, ``"default"`` or ``"tuned"``.
- an *option set*: what that resolves to, ``"default"`` (XLA's defaults) or ``"tuned"``
  (`jaxconv.environment.compiler_options`: on jaxlib 0.10 CPU, convolutions and dots to XLA's
  own kernels instead of YNNPACK); `option_sets` lists those this backend and jaxlib have.
- *compiler options*: the dict an option set stands for, as ``jax.jit(compiler_options=...)``
  takes it.

``"auto"`` resolves from the committed per-class table (`jaxconv.tuning.compile_table`), keyed
by the machine class (`machine_class`: backend, CPU class, core count, jaxlib), never from a
timing: the two sets compute different bits, so a pick by timing would make a run's numbers
depend on the machine's load or on a cache file. `choices` is what a run records (in its
checkpoints and ``result.json``); `check_resume` refuses to continue a run under others.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from jaxconv import environment
from jaxconv.functional import autotune
from jaxconv.train import hosts
from jaxconv.train.recipe import COMPILE_OPTIONS as REQUESTS
from jaxconv.tuning import compile_table, native, timing
from jaxconv.tuning.machine import YNN_OPTION, MachineClass, machine_class

#: Timed steps per call of `time_step`, after one warm-up step (which compiles).
REPEATS = 3
#: The recorded choices that change a run's numbers; a resume must match them all. Of
#: ``XLA_FLAGS`` (recorded whole) only the flag known to change the numbers is compared, the one
#: that says what YNNPACK takes: others, such as a forced device count, may differ. The native
#: extension's presence and oneDNN version count too: policy versions 2 to 4 pick it where it
#: runs; and so does how BatchNorm sums its channels (version 4: natively on AVX-512 CPUs).
COMPARED = ("option_set", "compiler_options", "ynnpack_flag", "autotune", "policy_version",
            "native", "batch_norm")


def option_sets(backend: str | None = None) -> dict[str, dict[str, str]]:
    """``{"default": {}, "tuned": {...}}``; only ``"default"`` where no tuned options are known
    for this backend and jaxlib."""
    tuned = environment.compiler_options(backend)
    return {"default": {}, "tuned": tuned} if tuned else {"default": {}}


def resolve(request: str, machine: MachineClass | None = None) -> tuple[str, str]:
    """The option set for ``request`` on ``machine`` (this one by default) and why.

    Raises:
      ValueError: ``request`` is not one of `REQUESTS`.
    """
    if request not in REQUESTS:
        raise ValueError(f"train.compile_options: {request!r} is not one of "
                         f"{', '.join(REQUESTS)}")
    machine = machine or machine_class()
    available = option_sets(machine.backend)
    if request != "auto":
        if request in available:
            return request, "asked for"
        return "default", (f"asked for {request!r}, which this backend and jaxlib do not have "
                           f"({machine}): XLA's defaults")
    row = compile_table.lookup(machine.backend, machine.isa, machine.jaxlib, machine.cores)
    if row is None or row.option_set not in available:
        return "default", f"{compile_table.UNMEASURED} ({machine})"
    return row.option_set, f"committed table, {machine}: {row.reason}"


def choices(request: str, machine: MachineClass | None = None) -> dict[str, Any]:
    """The record of what a run with ``Recipe.compile_options=request`` uses here: the option
    set and its compiler options, why, the machine class, this process's ``XLA_FLAGS`` (and
    the value it gives the YNNPACK flag, `jaxconv.tuning.machine.YNN_OPTION`, or ``None``) and
    whether ``impl="auto"`` autotunes (``JAXCONV_AUTOTUNE=1``), and whether the native
    extension is present with its oneDNN version (`jaxconv.tuning.native.record`: a config
    that names ``impl="onednn"`` computes with it)."""
    machine = machine or machine_class()
    name, reason = resolve(request, machine)
    flags = os.environ.get("XLA_FLAGS", "")
    ynnpack = re.findall(rf"--{YNN_OPTION}=(\S*)", flags)
    return {"requested": request, "option_set": name,
            "compiler_options": option_sets(machine.backend)[name], "reason": reason,
            "machine_class": str(machine), "xla_flags": flags,
            "ynnpack_flag": ynnpack[-1] if ynnpack else None, "autotune": autotune.enabled(),
            "native": native.record()}


def agreed(chosen: Mapping[str, Any]) -> dict[str, Any]:
    """``chosen`` with process 0's option set, on every process of a multi-host run (processes
    on machines of other classes could resolve ``"auto"`` differently, and every process must
    compile the same program); unchanged with one process."""
    names = list(option_sets())
    name = names[hosts.from_process_0(names.index(chosen["option_set"]))]
    if name == chosen["option_set"]:
        return dict(chosen)
    return {**chosen, "option_set": name, "compiler_options": option_sets()[name],
            "reason": f"process 0's choice ({chosen['reason']} here)"}


def describe(recorded: Mapping[str, Any]) -> str:
    """One line for a choices record (or an older, partial one)."""
    parts = [f"option set {recorded.get('option_set', 'not recorded')}"]
    if "compiler_options" in recorded:
        parts[0] += f" {dict(recorded['compiler_options'])}"
    if "xla_flags" in recorded:
        parts.append(f"XLA_FLAGS {recorded['xla_flags'] or '(none)'!r}")
    if "autotune" in recorded:
        parts.append(f"autotune {'on' if recorded['autotune'] else 'off'}")
    if "policy_version" in recorded:
        parts.append(f"formulation policy version {recorded['policy_version']}")
    if "batch_norm" in recorded:
        parts.append(f"BatchNorm sums {recorded['batch_norm']}")
    if "native" in recorded:
        found = recorded["native"] or {}
        state = f"oneDNN {found.get('onednn')}" if found.get("available") else "absent"
        parts.append(f"native extension {state}")
    return ", ".join(parts)


def check_resume(recorded: Mapping[str, Any] | None, current: Mapping[str, Any],
                 where: str) -> None:
    """Refuses to resume a run recorded under other choices than ``current``.

    ``recorded`` comes from the checkpoint (``None`` when it predates records; such a run
    resumes); only the `COMPARED` keys it holds are compared.

    Raises:
      ValueError: a compared choice differs; the message names both.
    """
    if not recorded:
        return
    differ = [k for k in COMPARED if k in recorded and recorded[k] != current.get(k)]
    if differ:
        raise ValueError(
            f"{where}: this run was checkpointed under {describe(recorded)} and would resume "
            f"under {describe(current)} (differs in {', '.join(differ)}); a resume under "
            "other choices would not give the numbers of an uninterrupted run. Resume it where "
            "they resolve as before (the same train.compile_options, YNNPACK flag in XLA_FLAGS, "
            "JAXCONV_AUTOTUNE, machine class, formulation policy version and native extension), "
            "or train it afresh in another folder")


def time_step(step: Callable, state: Any, batch: tuple, repeats: int = REPEATS) -> float:
    """Median milliseconds of ``state = step(state, *batch)[0]`` after one warm-up call."""
    current = [state]

    def call():
        current[0] = step(current[0], *batch)[0]
        return current[0]

    return timing.median_ms_of(call, repeats)
