"""Names that go in the next release, each warning when used.

Forward-mode autodiff no longer needs a context (every formulation is a primitive with its own
forward-mode rule), and what the batch is sharded into is the ``compilation=`` argument of
each op (`jaxconv.functional.Compilation`), not a context read at trace time.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


def _warn(name: str, instead: str) -> None:
    warnings.warn(f"jaxconv.functional.{name} is deprecated and will be removed in the next "
                  f"release; {instead}", DeprecationWarning, stacklevel=3)


@contextlib.contextmanager
def forward_mode_ad() -> Iterator[None]:
    """Deprecated, and does nothing: ``jax.jvp``, ``jax.jacfwd``, ``jax.linearize`` and
    ``jax.hessian`` work through every op without it.

    Entering the context emits a ``DeprecationWarning``; it will be removed in the next release.

    Yields:
      ``None``; the body runs exactly as it would outside the context.
    """
    _warn("forward_mode_ad", "forward-mode autodiff works without it")
    yield


def in_forward_mode_ad() -> bool:
    """Deprecated: always ``False`` (no formulation stands down for forward mode).

    Each call emits a ``DeprecationWarning``; it will be removed in the next release.

    Returns:
      ``False``, inside `forward_mode_ad` or not.
    """
    _warn("in_forward_mode_ad", "no formulation depends on it")
    return False


@contextlib.contextmanager
def data_parallel(shards: int) -> Iterator[None]:
    """Deprecated, and does nothing: pass ``compilation=Compilation(batch_shards=shards)`` to
    the ops (or set it on layers with `jaxconv.nnx.set_compilation`).

    Entering the context emits a ``DeprecationWarning``; it will be removed in the next release.

    Args:
      shards: ignored (neither checked nor stored); what ``batch_shards`` would now take.

    Yields:
      ``None``; ops traced inside the context are compiled exactly as outside it.
    """
    _warn("data_parallel", "pass compilation=jaxconv.functional.Compilation(batch_shards=...)")
    yield
