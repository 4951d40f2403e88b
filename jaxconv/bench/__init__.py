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
    """Machine, versions and the XLA flags in effect.

    Imports PyTorch when it is installed, to report its version and thread count.

    Returns:
      One Markdown comment line, ``# conv benchmark: ...``: CPU architecture and core count,
      jax version and default backend, PyTorch (or that it is missing), ``XLA_FLAGS`` and
      ``GLIBC_TUNABLES`` as this process has them, whether asynchronous CPU dispatch is on,
      and the CPU model and instruction-set class.
    """
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
    """The whole benchmark as Markdown lines, yielded as each row is measured.

    Runs in this process, with its environment and JAX settings as they are (see
    `run_with_settings` for fresh processes). The first line is `header`; each table is
    preceded by an empty line.

    Args:
      repeats: timed repeats of each op-table measurement (the table reports medians).
      cases: run only the op cases whose name contains one of these strings; all when empty.
      nets: the bench nets (``jaxconv.bench.nets.NETS``) for the training-step and fit
        tables; all when empty.
      ops: include the per-formulation op table.
      steps: include the training-step table (jaxconv, ``flax.nnx.Conv`` and PyTorch nets).
      fit: include the whole-fit table (jaxconv's ``fit`` against a PyTorch loop).

    Yields:
      Markdown lines, without newlines.

    Raises:
      ValueError: ``nets`` names a net that is not in ``NETS``; raised when the first line is
        requested, since the body of a generator runs only then.
    """
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
    dispatch, as the ``jaxconv`` command runs).

    Each process is ``python -m jaxconv.bench`` under this interpreter, printing its lines to
    this process's standard output; with several settings, each run is preceded by a
    ``## settings: <setting>`` heading. Any setting other than ``"none"`` gets the
    recommended environment, but only ``"recommended"`` also gets synchronous dispatch.

    Args:
      settings: the settings to run, in order: ``"none"`` and/or ``"recommended"``.
      repeats, cases, nets, ops, steps, fit: as in `report`.

    Raises:
      OSError: a benchmark process exits with a non-zero status (an unknown net included);
        the settings after it are not run.
    """
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
