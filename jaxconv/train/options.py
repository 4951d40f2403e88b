"""Compile options for the engine's own ``jax.jit``, picked by timing the real training step.

A library cannot pass compile options into its users' functions, but the engine compiles its own
step, so it can try each candidate there: XLA's defaults, and `jaxconv.environment`'s measured
options (on jaxlib 0.10 CPU: convolutions and dots to XLA's own kernels instead of YNNPACK,
which on some CPUs is several times slower). Each candidate's call (the several steps `fit`
runs per call) is compiled and timed once per (backend, CPU class, jaxlib, devices, YNNPACK
state, model, inputs), the tuned one only when the default call takes at least `WORTH_MS`;
the winner and the timings are kept in a
JSON file, ``$JAXCONV_COMPILE_CACHE`` or ``~/.cache/jaxconv/compile_options.json``, so later
runs on the machine compile once.

Ops traced for the step are told the options (`jaxconv.functional.cpu.compiling_with`), so
``impl="auto"`` picks formulations for the compilation that will really happen.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from jaxconv import environment
from jaxconv.functional import cpu
from jaxconv.train import hosts

CACHE_ENV = "JAXCONV_COMPILE_CACHE"
#: A call of the default program faster than this is not worth a second compilation: the
#: options change how large convolutions run, and small models' steps are mostly overhead.
WORTH_MS = 200.0
CHOICES = ("auto", "default", "tuned")
#: Timed steps per candidate, after one warm-up step (which compiles).
REPEATS = 3


def candidates(backend: str | None = None) -> dict[str, dict[str, str]]:
    """``{"default": {}, "tuned": {...}}``; only ``"default"`` where no tuned options are known
    for this backend and jaxlib."""
    tuned = environment.compiler_options(backend)
    return {"default": {}, "tuned": tuned} if tuned else {"default": {}}


def cache_path() -> Path:
    default = Path.home() / ".cache" / "jaxconv" / "compile_options.json"
    return Path(os.environ.get(CACHE_ENV) or default)


def key(state: Any, batch_shapes: tuple[tuple[int, ...], ...], model: str) -> str:
    """What a timing depends on: backend, CPU class, jaxlib, devices, whether YNNPACK takes
    convolutions in this process, the candidates' options, the model and the inputs."""
    from jaxlib import version

    shapes = jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), state)
    facts = (model, shapes, batch_shapes, candidates(), jax.device_count(),
             cpu.ynnpack_convolutions())
    digest = hashlib.sha256(repr(facts).encode()).hexdigest()[:16]
    return f"{jax.default_backend()}|{cpu.isa()}|{version.__version__}|{digest}"


def _load(path: Path) -> dict[str, Any]:
    try:
        entries = json.loads(path.read_text()) if path.exists() else {}
        return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError):
        warnings.warn(f"ignoring the unreadable cache {path}; it will be rewritten",
                      stacklevel=3)
        return {}


def _store(path: Path, name: str, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    entries = _load(path)
    entries[name] = entry
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
    os.replace(tmp, path)


def time_step(step: Callable, state: Any, batch: tuple, repeats: int = REPEATS) -> float:
    """Median milliseconds of ``state = step(state, *batch)[0]`` after one warm-up call."""
    state = jax.block_until_ready(step(state, *batch)[0])
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        state = jax.block_until_ready(step(state, *batch)[0])
        times.append((time.perf_counter() - tick) * 1e3)
    return sorted(times)[len(times) // 2]


def choose(choice: str, make_step: Callable[[str], Callable],
           fresh_state: Callable[[], Any], batch: tuple, model: str
           ) -> tuple[str, dict[str, float]]:
    """The candidate name for ``choice`` and the timings behind it (empty when not timed).

    Args:
      choice: ``"auto"`` (time every candidate, cached), ``"default"`` or ``"tuned"``.
      make_step: a candidate's name -> the jitted step compiled with its options.
      fresh_state: a new train state (the step donates the one it gets).
      batch: one training batch as the step takes it.
      model: a description of the model for the cache key.
    """
    if choice not in CHOICES:
        raise ValueError(f"train.compile_options: {choice!r} is not one of "
                         f"{', '.join(CHOICES)}")
    options = candidates()
    if choice != "auto":
        return (choice if choice in options else "default"), {}
    if len(options) == 1:
        return "default", {}
    state = fresh_state()
    name = key(state, tuple(tuple(b.shape) for b in batch), model)
    path = cache_path()
    entry = _load(path).get(name)
    names = list(options)
    # the processes of a multi-host run all time (the steps are collective) or none does, and
    # all take process 0's pick
    cached = hosts.from_process_0(
        names.index(entry["pick"]) if entry is not None and entry.get("pick") in options
        else -1)
    if cached >= 0:
        pick = names[cached]
        return pick, dict(entry["ms"]) if entry is not None and entry["pick"] == pick else {}
    ms = {"default": time_step(make_step("default"), fresh_state(), batch)}
    if hosts.from_process_0(ms["default"] >= WORTH_MS):
        ms.update({label: time_step(make_step(label), fresh_state(), batch)
                   for label in options if label != "default"})
    entry = {"pick": names[hosts.from_process_0(names.index(min(ms, key=ms.get)))],
             "ms": {k: round(v, 2) for k, v in ms.items()}}
    _store(path, name, entry)
    return entry["pick"], dict(entry["ms"])
