"""``impl="autotune"``: time every formulation that can express a call, once per shape, and keep
the fastest.

The first call with a new (backend, op, resolved conv, dtype) compiles and times each candidate's
forward + backward (the gradient of ``sum(y ** 2)`` with respect to input and kernel, median of
`REPEATS` calls after a warm-up) on random inputs of the call's shapes, and stores the winner with
its timings in a JSON file: ``$JAXCONV_AUTOTUNE_CACHE``, by default
``~/.cache/jaxconv/autotune.json``. Later calls, in this process or another, read it. Tracing
happens once per shape, so a jitted step pays the measurement on its first call only.
``JAXCONV_AUTOTUNE=1`` makes ``impl="auto"`` autotune too.

Formulations compute different bits, so autotuning makes the numbers depend on a timing: it
is a user's explicit request (``impl="autotune"`` or ``JAXCONV_AUTOTUNE=1``), and a training
run records whether it was on (`jaxconv.train.options.choices`). The key carries what changes
the program or the timing: backend, CPU model and class, jaxlib, op, dtype, the resolved conv
(its compilation included) and the ``XLA_FLAGS`` the measurement compiled under. In a
multi-host run every process takes process 0's pick and process 0 alone writes the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.functional.formulations import ConvSpec, Formulation
from jaxconv.tuning import cache, machine
from jaxconv.tuning.timing import median_ms

CACHE_ENV = "JAXCONV_AUTOTUNE_CACHE"
ENABLE_ENV = "JAXCONV_AUTOTUNE"
REPEATS = 5


def enabled() -> bool:
    """Whether ``JAXCONV_AUTOTUNE=1`` asks ``impl="auto"`` to autotune."""
    return os.environ.get(ENABLE_ENV, "0") == "1"


def cache_path() -> Path:
    return cache.path_from(CACHE_ENV, "autotune.json")


def _key(backend: str, op: str, spec: ConvSpec, dtype: Any) -> str:
    """What a timing depends on besides the call: the backend, on CPU the instruction-set
    class (the same conv's fastest formulation changed with AVX-512), jaxlib's version, the
    dtype, and the compile regime: the ``XLA_FLAGS`` the measurement compiles under."""
    where = f"{machine.model()} {machine.isa()}" if backend == "cpu" else backend
    flags = os.environ.get("XLA_FLAGS", "")
    return (f"{backend}|{where}|jaxlib {machine.jaxlib_version()}|{op}|{jnp.dtype(dtype).name}|"
            f"XLA_FLAGS={flags}|{spec!r}")


def _from_process_0(names: list[str], pick: str) -> str:
    """Process 0's ``pick`` among ``names`` (the same list on every process), on every process
    of a multi-host run: each process's timing may pick otherwise, and all must trace one
    program."""
    if jax.process_count() == 1:
        return pick
    from jax.experimental import multihost_utils

    with jax.ensure_compile_time_eval():
        index = multihost_utils.broadcast_one_to_all(np.int32(names.index(pick)))
    return names[int(index)]


def measure(compute: Callable, spec: ConvSpec, dtype: Any, kernel_shape: tuple[int, ...],
            repeats: int = REPEATS) -> float:
    """Median milliseconds of one formulation's forward + backward on random inputs, compiled
    with the compiler options of the call's compilation (`ConvSpec.compilation`)."""
    # Concrete arrays and an eager call even while the caller's function is being traced.
    with jax.ensure_compile_time_eval():
        r = np.random.default_rng(0)
        x = jnp.asarray(r.standard_normal(spec.input_shape), dtype)
        k = jnp.asarray(r.standard_normal(kernel_shape) * 0.1, dtype)

        def loss(x, k):
            return jnp.sum(compute(x, k, spec).astype(jnp.float32) ** 2)

        options = dict(spec.compilation.compiler_options) or None
        step = jax.jit(jax.grad(loss, argnums=(0, 1)), compiler_options=options)
        return median_ms(step, (x, k), repeats)


def fastest(op: str, table: Mapping[str, Formulation], spec: ConvSpec,
            able: Mapping[str, str | None], backend: str, dtype: Any,
            kernel_shape: tuple[int, ...]) -> tuple[str, str]:
    """The fastest formulation able to compute ``spec`` here, and the reason quoting its time
    (``kernel_shape``: the kernel the formulations take, in the op's layout)."""
    if backend != jax.default_backend():
        raise ValueError(f"impl='autotune' measures on this process's backend "
                         f"({jax.default_backend()!r}), not backend={backend!r}")
    key, path = _key(backend, op, spec, dtype), cache_path()
    entry = cache.entries(path, "autotune").get(key)
    if entry is None or able.get(entry.get("impl"), "unknown") is not None:
        ms = {name: measure(table[name].compute, spec, dtype, kernel_shape)
              for name, why in able.items() if why is None}
        entry = {"impl": min(ms, key=ms.get), "ms": {n: round(t, 3) for n, t in ms.items()}}
        if jax.process_index() == 0:
            cache.store(path, key, entry)
    # every process asks, measured or cached alike, so the collective always lines up
    impl = _from_process_0(sorted(n for n, why in able.items() if why is None), entry["impl"])
    timings = ", ".join(f"{n} {t:.2f} ms" for n, t in sorted(entry["ms"].items(),
                                                              key=lambda kv: kv[1]))
    return impl, (f"autotuned: fastest forward+backward for these shapes on {backend} "
                  f"({timings}; cached in {path})")
