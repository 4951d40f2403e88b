"""The one timer: the median of repeated calls after a warm-up call, each blocked until its
result is ready. The autotuner, the engine's step-time estimate, the benchmarks and the
experiment scripts all time with it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def median_ms_of(call: Callable[[], Any], repeats: int) -> float:
    """Median milliseconds of ``call()`` (blocked until ready) over ``repeats`` calls, after one
    warm-up call (which compiles)."""
    jax.block_until_ready(call())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def median_ms(fn: Callable[..., Any], args: tuple, repeats: int) -> float:
    """`median_ms_of` ``fn(*args)``."""
    return median_ms_of(lambda: fn(*args), repeats)
