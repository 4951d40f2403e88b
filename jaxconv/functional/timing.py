"""Timing shared by the autotuner, the benchmarks and experiment scripts: medians after a
warm-up call."""

from __future__ import annotations

import time

import jax
import numpy as np


def median_ms(fn, args, repeats: int) -> float:
    """Median milliseconds of ``fn(*args)`` (blocked until ready) after one warm-up call."""
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))
