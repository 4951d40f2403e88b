"""Deprecated: the CPU facts moved to `jaxconv.tuning.machine`; this module goes in 0.2.0."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping

from jaxconv._moved import moved


@contextlib.contextmanager
def compiling_with(options: Mapping[str, str]) -> Iterator[None]:
    """Deprecated, and does nothing: pass ``compilation=Compilation(compiler_options=...)`` to
    the ops (or set it on layers with `jaxconv.nnx.set_compilation`)."""
    warnings.warn("jaxconv.functional.cpu.compiling_with is deprecated, does nothing and goes "
                  "in jaxconv 0.2.0; pass compilation=jaxconv.functional.Compilation("
                  "compiler_options=...) to the ops", DeprecationWarning, stacklevel=3)
    yield


__getattr__ = moved(__name__, "jaxconv.tuning.machine")
