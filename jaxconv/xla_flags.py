"""XLA flags that speed up convolutions, set only by jaxconv's own entry points.

``import jaxconv`` never changes the process environment. The ``jaxconv`` command (and
`jaxconv.experiment.run`, when it starts before JAX has created its backends) calls `apply`,
which adds `recommended` flags to ``XLA_FLAGS``. Library users who want the same effect set
the variable themselves before JAX starts, e.g.::

    XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-individual_convolution,-individual_dot

What the flag does (jax 0.10, measured by ``jaxconv bench --xla-flags both`` on a 2-core x86
CPU; see experiments/results/bench_ops_cpu.md): XLA's CPU backend hands 2-D convolutions and
dots to YNNPACK by default, and its convolutions run slower there than XLA's own (Eigen) ones:
dense, strided and dilated 3x3 convolutions forward + backward take about 0.6x the time with
the flag, grouped and transposed ones (as jaxconv formulates them) 0.4-0.6x; depthwise and 1x1
are unchanged. An unknown flag makes XLA abort, so `recommended` names flags only for the
jaxlib versions they were measured on.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: jaxlib ``major.minor`` -> flags measured to help convolutions on CPU.
MEASURED: dict[str, tuple[str, ...]] = {
    "0.10": ("--xla_cpu_experimental_ynn_fusion_type=-individual_convolution,-individual_dot",),
}

#: Set this variable to ``0`` to keep jaxconv's commands from adding flags.
OPT_OUT = "JAXCONV_XLA_FLAGS"


def recommended(jaxlib_version: str | None = None) -> tuple[str, ...]:
    """The flags measured to help on this jaxlib (none for versions not measured)."""
    if jaxlib_version is None:
        from jaxlib import version

        jaxlib_version = version.__version__
    return MEASURED.get(".".join(jaxlib_version.split(".")[:2]), ())


def backends_started() -> bool:
    """Whether JAX has created its backends (after which ``XLA_FLAGS`` has no effect)."""
    from jax._src import xla_bridge

    return xla_bridge.backends_are_initialized()


def apply(environ: MutableMapping[str, str] | None = None,
          jaxlib_version: str | None = None) -> tuple[str, ...]:
    """Adds the `recommended` flags that ``XLA_FLAGS`` does not already set; returns them.

    Adds nothing when ``JAXCONV_XLA_FLAGS=0``, when the user's ``XLA_FLAGS`` already sets a flag
    of the same name (the user's value wins), or when JAX's backends already exist.
    """
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT, "1") == "0" or backends_started():
        return ()
    current = environ.get("XLA_FLAGS", "")
    names = {flag.split("=")[0] for flag in current.split()}
    added = tuple(f for f in recommended(jaxlib_version) if f.split("=")[0] not in names)
    if added:
        environ["XLA_FLAGS"] = " ".join([*current.split(), *added])
    return added
