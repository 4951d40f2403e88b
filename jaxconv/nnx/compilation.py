"""`set_compilation`: tell every conv and BatchNorm layer of a model how the program it runs in
is compiled."""

from __future__ import annotations

from flax import nnx

from jaxconv.functional import Compilation
from jaxconv.nnx.layers import Conv, ConvTranspose, DepthwiseConv, Pointwise, SeparableConv
from jaxconv.nnx.norm import BatchNorm

#: The layers whose ops take a ``compilation=`` argument.
_TAKES_COMPILATION = (Conv, Pointwise, DepthwiseConv, SeparableConv, ConvTranspose, BatchNorm)


def set_compilation(module: nnx.Module, compilation: Compilation | None) -> nnx.Module:
    """Sets the `jaxconv.functional.Compilation` every jaxconv conv and BatchNorm layer in
    ``module`` passes to its op; returns ``module``.

    It is a static attribute of each layer (part of the graph definition ``nnx.split``
    returns), so a function traced with one compilation is retraced, not reused, under
    another. ``None`` restores the default (a plain ``jax.jit`` on one device).

    >>> from flax import nnx
    >>> from jaxconv import functional as F, nnx as jn
    >>> layer = set_compilation(jn.Conv(3, 8, (3, 3), rngs=nnx.Rngs(0)),
    ...                         F.Compilation(batch_shards=2))
    >>> layer.compilation.batch_shards
    2

    Args:
      module: any NNX module.
      compilation: what the ops are compiled with; ``None``: the default.

    Returns:
      ``module``, changed in place.
    """
    if compilation is not None and not isinstance(compilation, Compilation):
        raise TypeError(f"set_compilation: compilation={compilation!r} must be a "
                        "jaxconv.functional.Compilation or None")
    for _, sub in nnx.iter_modules(module):
        if isinstance(sub, _TAKES_COMPILATION):
            sub.compilation = compilation
    return module
