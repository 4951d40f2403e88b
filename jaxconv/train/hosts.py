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


def flags_from_process_0(flags: list[bool]) -> list[bool]:
    """Process 0's ``flags`` (the same length on every process), on every process."""
    if jax.process_count() == 1:
        return list(flags)
    from jax.experimental import multihost_utils

    agreed = multihost_utils.broadcast_one_to_all(np.asarray(flags, dtype=bool))
    return [bool(f) for f in np.asarray(agreed)]
