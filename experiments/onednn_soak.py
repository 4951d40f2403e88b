"""Memory soak of the oneDNN formulation (issue 32, item 3): resident memory grows by less than
50 MB over 10,000 calls of varied shapes after warm-up.

Each call is one jitted forward + both gradients through ``impl="onednn"`` (three native
primitives). The shapes are random convs (rank 1-3, strides, dilation, groups and depthwise,
asymmetric padding) with more distinct primitive configurations than the extension's cache
holds (`CACHE_CAPACITY`) and than oneDNN's own primitive cache holds (1,024 by default), cycled
in a fixed order, so every call after warm-up evicts its primitives from both and builds them
again, generating their code anew: the path a leak in building, caching or freeing them would
show on.
XLA compiles each shape once, in the warm-up; the measured calls compile nothing.

RSS is ``VmRSS`` from ``/proc/self/status``, read after warm-up and every `--every` calls.
Exits 1 when the growth exceeds ``--limit-mb``; ``--report PATH`` writes the results as
Markdown with the CPU, date and commit.

Run: ``nice .venv/bin/python experiments/onednn_soak.py [--calls 10000] [--shapes 400]
[--report experiments/results/onednn_soak.md]``
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import gc
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv import functional as F
from jaxconv.experiment.provenance import git_commit
from jaxconv.tuning import machine, native

#: The extension's primitive cache capacity (``Cache::kCapacity`` in native/onednn_conv.cc).
CACHE_CAPACITY = 256


def onednn_cache_capacity() -> int:
    """oneDNN's own primitive cache capacity (``DNNL_PRIMITIVE_CACHE_CAPACITY``)."""
    capacity = ctypes.c_int()
    ctypes.CDLL(str(native.LIBRARY)).dnnl_get_primitive_cache_capacity(ctypes.byref(capacity))
    return capacity.value


def rss_mb() -> float:
    """This process's resident memory (``VmRSS``), in MB (10^6 bytes)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError("no VmRSS in /proc/self/status")


def random_config(r: np.random.Generator):
    """A small random conv: input and kernel shapes and F.conv's arguments."""
    rank = int(r.choice([1, 2, 2, 2, 3]))
    groups = int(r.choice([1, 1, 2, 4]))
    c_in, c_out = groups * int(r.integers(1, 5)), groups * int(r.integers(1, 5))
    if r.random() < 0.25:                      # depthwise, with a multiplier
        groups = c_in = int(r.integers(2, 9))
        c_out = c_in * int(r.integers(1, 3))
    size = {1: 24, 2: 12, 3: 6}[rank]
    kernel = (*(int(v) for v in r.integers(1, 4, rank)), c_in // groups, c_out)
    x_shape = (int(r.integers(1, 3)), *(int(v) for v in r.integers(size // 2, size + 1, rank)),
               c_in)
    args = dict(strides=tuple(int(v) for v in r.integers(1, 3, rank)),
                kernel_dilation=tuple(int(v) for v in r.integers(1, 3, rank)),
                padding=tuple((int(a), int(b)) for a, b in r.integers(0, 3, (rank, 2))),
                feature_group_count=groups)
    return x_shape, kernel, args


def step_for(args):
    """Jitted forward + both gradients of one conv."""
    def loss(x, k):
        return jnp.sum(jnp.sin(F.conv(x, k, impl="onednn", **args)))
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def build_cases(count: int, seed: int = 0):
    """``count`` distinct convs with an output, their operands and compiled steps."""
    r = np.random.default_rng(seed)
    cases, seen = [], set()
    while len(cases) < count:
        x_shape, k_shape, args = random_config(r)
        key = (x_shape, k_shape, tuple(sorted(args.items())))
        if key in seen:
            continue
        try:
            F.plan(x_shape, k_shape, impl="onednn", **args)
        except ValueError:                       # no output: nothing to convolve
            continue
        seen.add(key)
        x = jnp.asarray(r.standard_normal(x_shape), jnp.float32)
        k = jnp.asarray(r.standard_normal(k_shape) * 0.3, jnp.float32)
        cases.append((step_for(args), x, k))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--shapes", type=int, default=400,
                        help="distinct convs (three primitive configurations each)")
    parser.add_argument("--limit-mb", type=float, default=50.0)
    parser.add_argument("--every", type=int, default=1000, help="calls between RSS readings")
    parser.add_argument("--report", type=Path, help="write the results as Markdown here")
    options = parser.parse_args(argv)
    if not native.available():
        print(f"onednn_soak: {native.reason()}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    rss_start = rss_mb()
    cases = build_cases(options.shapes)
    for _ in range(2):                          # compile every shape, then fill every cache
        for step, x, k in cases:
            jax.block_until_ready(step(x, k))
    configurations = 3 * len(cases)
    warm_s = time.perf_counter() - started
    gc.collect()
    before = rss_mb()
    readings = [(0, before)]
    begun = time.perf_counter()
    for call in range(1, options.calls + 1):
        step, x, k = cases[(call - 1) % len(cases)]
        jax.block_until_ready(step(x, k))
        if call % options.every == 0 or call == options.calls:
            gc.collect()
            readings.append((call, rss_mb()))
    soak_s = time.perf_counter() - begun
    after = readings[-1][1]
    growth = after - before
    passed = growth <= options.limit_mb

    lines = [
        "# oneDNN formulation: memory soak",
        "",
        f"`nice .venv/bin/python experiments/onednn_soak.py --calls {options.calls} "
        f"--shapes {options.shapes}`, run {datetime.date.today().isoformat()}, commit "
        f"{git_commit()}, oneDNN {native.onednn_version()}, jax {jax.__version__}; CPU: "
        f"{machine.model()} ({machine.isa()}, {machine.cores()} cores, shared with a "
        "training run).",
        "",
        f"{len(cases)} distinct convs, each one jitted forward + both gradients (three oneDNN "
        f"primitives): {configurations} primitive configurations against the extension's "
        f"cache of {CACHE_CAPACITY} and oneDNN's own of {onednn_cache_capacity()}, cycled in "
        "order, so every call after warm-up evicts and rebuilds its primitives (the "
        f"extension's cache holds {native.cached_primitives()} at the end). Warm-up "
        f"(compiling every shape, two passes) took {warm_s:.0f} s and grew RSS from "
        f"{rss_start:.1f} MB to {before:.1f} MB; the {options.calls:,} calls took "
        f"{soak_s:.0f} s and compiled nothing.",
        "",
        "| calls after warm-up | RSS (MB) | growth (MB) |",
        "|---:|---:|---:|",
        *(f"| {call:,} | {mb:.1f} | {mb - before:+.1f} |" for call, mb in readings),
        "",
        f"**RSS before {before:.1f} MB, after {after:.1f} MB, growth {growth:+.1f} MB** "
        f"(limit {options.limit_mb:.0f} MB): {'pass' if passed else 'FAIL'}.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if options.report:
        options.report.write_text(text)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
