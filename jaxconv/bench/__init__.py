"""Benchmarks behind ``jaxconv bench``: each conv formulation against lax (what Flax users get)
and PyTorch (`ops`), and whole training steps of two small nets built from jaxconv layers, from
``flax.nnx.Conv`` and in PyTorch (`train_step`, `nets`).

Only ratios measured in one run mean anything: timings on a shared CPU drift between runs.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator, Sequence


def header() -> str:
    """Machine, versions and the XLA flags in effect."""
    import jax

    from jaxconv.tuning import machine

    try:
        import torch

        baseline = f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)"
    except ImportError:
        baseline = "PyTorch not installed (pip install -e '.[bench]')"
    return (f"# conv benchmark: {platform.machine()}, {os.cpu_count()} cores, jax "
            f"{jax.__version__} on {jax.default_backend()}, {baseline}, "
            f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '') or '(none)'!r}, "
            f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '') or '(none)'!r}, async "
            f"dispatch {'on' if jax.config.read('jax_cpu_enable_async_dispatch') else 'off'}; "
            f"CPU: {machine.model()} ({machine.isa()})")


def report(*, repeats: int = 10, cases: Sequence[str] = (), nets: Sequence[str] = (),
           ops: bool = True, steps: bool = True, fit: bool = False) -> Iterator[str]:
    """The whole benchmark as Markdown lines, yielded as each row is measured."""
    from jaxconv.bench import fit as fit_module
    from jaxconv.bench import nets as nets_module
    from jaxconv.bench import ops as ops_module
    from jaxconv.bench import train_step

    unknown = [n for n in nets if n not in nets_module.NETS]
    if unknown:
        raise ValueError(f"nets={unknown!r}: expected names from "
                         f"{', '.join(nets_module.NETS)}")
    yield header()
    if ops:
        yield ""
        yield from ops_module.table(repeats, cases)
    if steps:
        yield ""
        yield from train_step.table(nets or tuple(nets_module.NETS))
    if fit:
        yield ""
        yield from fit_module.table(nets or tuple(nets_module.NETS))


def run_with_settings(settings: Sequence[str], *, repeats: int, cases: Sequence[str] = (),
                      nets: Sequence[str] = (), ops: bool = True, steps: bool = True,
                      fit: bool = False) -> None:
    """Runs `report` once per setting, each in a fresh process (XLA flags and malloc tunables
    only take effect at start-up): ``"none"`` keeps this environment as it is, as a library
    user has it; ``"recommended"`` adds `jaxconv.environment.recommended` (and synchronous
    dispatch, as the ``jaxconv`` command runs)."""
    import subprocess
    import sys

    from jaxconv import environment

    for setting in settings:
        env = dict(os.environ) if setting == "none" else environment.recommended(os.environ)
        command = [sys.executable, "-m", "jaxconv.bench", "--repeats", str(repeats),
                   "--cases", *cases, "--nets", *nets]
        command += ["--no-ops"] * (not ops) + ["--no-steps"] * (not steps) + ["--fit"] * fit
        command += ["--synchronous-dispatch"] * (setting == "recommended")
        if len(settings) > 1:
            print(f"\n## settings: {setting}\n", flush=True)
        if subprocess.run(command, env=env).returncode != 0:
            raise OSError(f"the benchmark with settings={setting!r} failed")
