"""Mixed precision for a whole NNX model: one compute dtype, one parameter dtype, set in place.

Flax layers take ``dtype`` (what they compute in: inputs and parameters are cast to it at each
call) and ``param_dtype`` (what their parameters are stored in). `set_dtypes` gives every layer of
a built model the same pair, so a model written without precision arguments (a jaxconv block, a
preset, a Flax model of one's own) runs in bfloat16 while its parameters stay float32.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
from flax import nnx

FLOATS = ("float32", "bfloat16", "float16", "float64")


def float_dtype(name: str, value: Any) -> Any:
    """``value`` as a floating dtype (``None`` stays ``None``), or an error naming ``name``."""
    if value is None:
        return None
    try:
        dtype = jnp.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or dtype.name not in FLOATS:
        raise ValueError(f"{name}={value!r} is not a floating dtype; expected one of "
                         f"{', '.join(FLOATS)} (or None)")
    return dtype


def set_dtypes(module: nnx.Module, dtype: Any = None, param_dtype: Any = None) -> nnx.Module:
    """Sets the compute ``dtype`` of every layer in ``module`` and casts its floating parameters
    to ``param_dtype``; returns ``module``.

    ``dtype=None`` leaves each layer's compute dtype as it is; ``param_dtype=None`` leaves the
    parameters. BatchNorm running statistics (``nnx.BatchStat``) are never cast: Flax computes
    batch statistics in float32 whatever the compute dtype, and keeps the running averages in
    float32 too. The model's outputs have the compute dtype; cast them before a loss.

    >>> from jaxconv import nnx as jn
    >>> layer = set_dtypes(jn.Conv(3, 8, (3, 3), rngs=nnx.Rngs(0)), jnp.bfloat16)
    >>> layer(jnp.ones((1, 8, 8, 3))).dtype, layer.kernel.dtype
    (dtype(bfloat16), dtype('float32'))

    Args:
      module: any NNX module.
      dtype: the compute dtype (``None``: unchanged).
      param_dtype: the dtype floating parameters are cast to (``None``: unchanged).

    Returns:
      ``module``, changed in place.
    """
    dtype = float_dtype("dtype", dtype)
    param_dtype = float_dtype("param_dtype", param_dtype)
    for _, sub in nnx.iter_modules(module):
        if dtype is not None and hasattr(sub, "dtype") and hasattr(sub, "param_dtype"):
            sub.dtype = dtype
        if param_dtype is not None and hasattr(sub, "param_dtype"):
            sub.param_dtype = param_dtype
    if param_dtype is not None:
        for _, param in nnx.iter_graph(module):
            if isinstance(param, nnx.Param) and jnp.issubdtype(param.dtype, jnp.floating):
                param.set_value(param[...].astype(param_dtype))
    return module
