"""The processes of a multi-host run (`jax.distributed.initialize`) and how they agree.

Every process runs the same program; whatever decides which compiled calls run (a seed already
finished, a checkpoint to resume, the compile-option set) must be the same on all
of them, or a process waits forever in a collective the others never join. Such decisions are
process 0's, broadcast to the rest. With one process, every function here is the identity.
"""

from __future__ import annotations

import jax
import numpy as np


def primary() -> bool:
    """Whether this process writes the run's files: process 0 of a multi-host run, or the only
    process."""
    return jax.process_index() == 0


def from_process_0(value: int) -> int:
    """Process 0's ``value``, on every process."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int64(value)))


def formulation_class() -> str:
    """What decides this process's formulation picks besides the config: the CPU class,
    whether the native extension runs (and its oneDNN version), the jaxlib version (which
    convolutions YNNPACK takes) and whether autotune times."""
    from importlib.metadata import version

    from jaxconv.functional import autotune
    from jaxconv.tuning import machine, native

    extension = (f"native extension with oneDNN {native.onednn_version()}" if native.available()
                 else "no native extension")
    timing = ", autotune on" if autotune.enabled() else ""
    return f"{machine.isa()} CPU, {extension}, jaxlib {version('jaxlib')}{timing}"


def check_same_formulation_class() -> None:
    """Refuses a multi-host run whose processes differ in `formulation_class`: they would
    compile different formulations (other numbers on each, and other collectives, so a process
    could wait forever for the rest). Every process raises the same error, also where one of
    them could not say its class (a bad ``JAXCONV_NATIVE``, say).

    Raises:
      ValueError: the processes differ; the message names each one's class.
    """
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    try:
        local = formulation_class()
    except Exception as error:              # every process must still reach the gather
        local = f"error: {error}"
    raw = local.encode()[:_CLASS_BYTES]
    padded = np.zeros(_CLASS_BYTES, np.uint8)
    padded[:len(raw)] = np.frombuffer(raw, np.uint8)
    every = np.asarray(multihost_utils.process_allgather(padded)).reshape(-1, _CLASS_BYTES)
    classes = [bytes(row).rstrip(b"\0").decode(errors="replace") for row in every]
    if len(set(classes)) > 1:
        listed = "; ".join(f"process {i}: {c}" for i, c in enumerate(classes))
        raise ValueError(f"the processes of this multi-host run differ in what decides the "
                         f"formulations ({listed}); expected the same on every process: one "
                         f"CPU class, jaxlib version and autotune setting, and the native "
                         f"extension on all or none (JAXCONV_NATIVE=0 on every process runs "
                         f"them all without it)")


_CLASS_BYTES = 256


def flags_from_process_0(flags: list[bool]) -> list[bool]:
    """Process 0's ``flags`` (the same length on every process), on every process."""
    if jax.process_count() == 1:
        return list(flags)
    from jax.experimental import multihost_utils

    agreed = multihost_utils.broadcast_one_to_all(np.asarray(flags, dtype=bool))
    return [bool(f) for f in np.asarray(agreed)]
