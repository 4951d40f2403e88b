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

import json
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.functional import cpu
from jaxconv.functional.formulations import ConvSpec, Formulation
from jaxconv.functional.timing import median_ms

CACHE_ENV = "JAXCONV_AUTOTUNE_CACHE"
ENABLE_ENV = "JAXCONV_AUTOTUNE"
REPEATS = 5

#: The parsed cache file per path, with the (device, inode, mtime, size) it was read at: the
#: file is the only state, so another cache path, an edited or a deleted file takes effect at
#: the next trace (every write replaces the file, so a new inode marks it even within one
#: mtime tick).
_parsed: dict[Path, tuple[tuple[int, ...], dict[str, dict[str, Any]]]] = {}


def enabled() -> bool:
    """Whether ``JAXCONV_AUTOTUNE=1`` asks ``impl="auto"`` to autotune."""
    return os.environ.get(ENABLE_ENV, "0") == "1"


def cache_path() -> Path:
    default = Path.home() / ".cache" / "jaxconv" / "autotune.json"
    return Path(os.environ.get(CACHE_ENV) or default)


def _key(backend: str, op: str, spec: ConvSpec, dtype: Any) -> str:
    """What a timing depends on besides the call: the backend, on CPU the instruction-set
    class (the same conv's fastest formulation changed with AVX-512), jaxlib's version, the
    dtype, and the compile regime: the ``XLA_FLAGS`` the measurement compiles under."""
    machine = f"{cpu.model()} {cpu.isa()}" if backend == "cpu" else backend
    flags = os.environ.get("XLA_FLAGS", "")
    return (f"{backend}|{machine}|jaxlib {jaxlib_version()}|{op}|{jnp.dtype(dtype).name}|"
            f"XLA_FLAGS={flags}|{spec!r}")


def jaxlib_version() -> str:
    import jaxlib

    return jaxlib.__version__


def _load(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text())
        if not isinstance(entries, dict):
            raise ValueError(f"expected a JSON object, found {type(entries).__name__}")
        return entries
    except (OSError, ValueError) as error:
        warnings.warn(f"autotune: ignoring the unreadable cache {path} ({error}); it will be "
                      "rewritten with fresh measurements", stacklevel=4)
        return {}


def _entries(path: Path) -> dict[str, dict[str, Any]]:
    """The cache file's entries, parsed again only when the file changed."""
    try:
        stat = path.stat()
    except OSError:
        return {}
    stamp = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
    seen = _parsed.get(path)
    if seen is None or seen[0] != stamp:
        seen = (stamp, _load(path))
        _parsed[path] = seen
    return seen[1]


def _store(path: Path, key: str, entry: dict[str, Any]) -> None:
    """Adds one entry to the cache file, keeping what other processes wrote meanwhile; the file
    is replaced atomically, never left half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entries = _load(path)
    entries[key] = entry
    # a name no other process, on this host or another sharing the folder, can take
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(handle, "w") as f:
        f.write(json.dumps(entries, indent=1, sort_keys=True))
    os.replace(tmp, path)


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
    """Median milliseconds of one formulation's forward + backward on random inputs."""
    # Concrete arrays and an eager call even while the caller's function is being traced.
    with jax.ensure_compile_time_eval():
        r = np.random.default_rng(0)
        x = jnp.asarray(r.standard_normal(spec.input_shape), dtype)
        k = jnp.asarray(r.standard_normal(kernel_shape) * 0.1, dtype)

        def loss(x, k):
            return jnp.sum(compute(x, k, spec).astype(jnp.float32) ** 2)

        return median_ms(jax.jit(jax.grad(loss, argnums=(0, 1))), (x, k), repeats)


def fastest(op: str, table: Mapping[str, Formulation], spec: ConvSpec,
            able: Mapping[str, str | None], backend: str, dtype: Any,
            kernel_shape: tuple[int, ...]) -> tuple[str, str]:
    """The fastest formulation able to compute ``spec`` here, and the reason quoting its time
    (``kernel_shape``: the kernel the formulations take, in the op's layout)."""
    if backend != jax.default_backend():
        raise ValueError(f"impl='autotune' measures on this process's backend "
                         f"({jax.default_backend()!r}), not backend={backend!r}")
    key, path = _key(backend, op, spec, dtype), cache_path()
    entry = _entries(path).get(key)
    if entry is None or able.get(entry.get("impl"), "unknown") is not None:
        ms = {name: measure(table[name].compute, spec, dtype, kernel_shape)
              for name, why in able.items() if why is None}
        entry = {"impl": min(ms, key=ms.get), "ms": {n: round(t, 3) for n, t in ms.items()}}
        if jax.process_index() == 0:
            _store(path, key, entry)
    # every process asks, measured or cached alike, so the collective always lines up
    impl = _from_process_0(sorted(n for n, why in able.items() if why is None), entry["impl"])
    timings = ", ".join(f"{n} {t:.2f} ms" for n, t in sorted(entry["ms"].items(),
                                                              key=lambda kv: kv[1]))
    return impl, (f"autotuned: fastest forward+backward for these shapes on {backend} "
                  f"({timings}; cached in {path})")
