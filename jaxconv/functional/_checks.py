"""Argument checks shared by every op: they run on static shapes, before XLA sees the call.

Each check raises `ValueError` or `TypeError` naming the argument, the value received and what
was expected. Nothing here computes a convolution.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import jax.numpy as jnp
import numpy as np
from jax.extend.core import InconclusiveDimensionOperation

from jaxconv.typing import Array, IntOrSeq, Shape


def integer(value: object) -> int | None:
    """``value`` as a Python int when it is an integer (NumPy's included) and not a bool."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def int_tuple(name: str, value: IntOrSeq | None, rank: int, *, minimum: int = 1) -> Shape:
    """``value`` as one int per spatial dim (an int broadcasts; ``None`` means 1, as in Flax).
    NumPy integers count as ints."""
    if value is None:
        value = 1
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}={value!r} is a bool; expected an int or {rank} ints")
    if integer(value) is not None:
        out: Shape = (integer(value),) * rank
    elif isinstance(value, Sequence | np.ndarray) and not isinstance(value, str):
        items = [integer(v) for v in value]
        out = tuple(items)
        if len(out) != rank or any(v is None for v in items):
            raise ValueError(
                f"{name}={value!r} does not fit a {rank}-D convolution; expected an int or "
                f"{rank} ints"
            )
    else:
        raise TypeError(f"{name}={value!r} has type {type(value).__name__}; expected an int or "
                        f"{rank} ints")
    if any(v < minimum for v in out):
        raise ValueError(f"{name}={value!r} must be >= {minimum} in every spatial dim")
    return out


def positive_int(name: str, value: object) -> int:
    as_int = integer(value)
    if as_int is None or as_int < 1:
        raise ValueError(f"{name}={value!r} must be a positive int")
    return as_int


def kernel_rank(kernel_shape: Shape, *, op: str) -> int:
    """The spatial rank, which comes from the kernel: ``(*kernel_spatial, C_in, C_out)``."""
    if len(kernel_shape) < 3:
        raise ValueError(
            f"{op}: kernel shape {kernel_shape} has {len(kernel_shape)} dims; expected "
            "(*kernel_spatial, in_channels, out_channels) with at least one spatial dim"
        )
    if any(d < 1 for d in kernel_shape):
        raise ValueError(f"{op}: kernel shape {kernel_shape} has an empty dim")
    return len(kernel_shape) - 2


def shapes(x_shape, kernel_shape, *, op: str, what: str = "convolution") -> tuple[Shape, Shape,
                                                                                   int]:
    """Static input and kernel shapes as int tuples, and the spatial rank; checks that the input
    has room for the kernel's spatial dims plus channels. The input's batch dims may be
    symbolic (`jax.export` shape polymorphism); its spatial and channel dims may not."""
    kernel_shape = tuple(int(d) for d in kernel_shape)
    rank = kernel_rank(kernel_shape, op=op)
    x_shape = tuple(x_shape)
    batch = len(x_shape) - rank - 1
    x_shape = (*(_batch_dim(d) for d in x_shape[:max(batch, 0)]),
               *(int(d) for d in x_shape[max(batch, 0):]))
    if len(x_shape) < rank + 1:
        raise ValueError(
            f"{op}: input shape {x_shape} has {len(x_shape)} dims, too few for a {rank}-D "
            f"{what} with kernel shape {kernel_shape}; expected (*batch, {rank} spatial dims, "
            "channels)")
    return x_shape, kernel_shape, rank


def _batch_dim(d):
    """A batch dim as an int, or as it is when it is symbolic (any batch)."""
    try:
        return int(d)
    except InconclusiveDimensionOperation:
        return d


def split_input(x_shape: Shape, rank: int) -> tuple[int, Shape, int]:
    """``(batch, spatial, channels)`` of a checked ``(*batch, *spatial, C)`` shape, the batch
    axes multiplied into one (as `batch_input` reshapes them)."""
    batch = 1
    for d in x_shape[:len(x_shape) - rank - 1]:
        batch *= d
    return batch, tuple(x_shape[len(x_shape) - rank - 1:-1]), x_shape[-1]


def groups_divide_channels(op: str, groups: int, channels: int) -> None:
    """Refuses a ``feature_group_count`` that does not divide the input's channels."""
    if channels % groups:
        raise ValueError(f"{op}: feature_group_count={groups} does not divide the input's "
                         f"{channels} channels")


def nonempty_output(op: str, out_spatial: Shape, why: str) -> None:
    """Refuses a conv whose output has a spatial dim of size 0; ``why`` says what made it so."""
    if any(n < 1 for n in out_spatial):
        raise ValueError(f"{op}: the output would be empty (spatial {out_spatial}): {why}")


def batch_input(x: Array, rank: int) -> tuple[Array, Callable[[Array], Array]]:
    """Reshapes ``(*batch, *spatial, C)`` to ``(B, *spatial, C)``; returns it and the inverse.

    Unbatched inputs get a batch of one; several batch axes are flattened into one, as in Flax.
    The caller has checked that ``x`` has at least ``rank + 1`` dims.
    """
    batch = x.shape[: x.ndim - rank - 1]
    flat = x.reshape((-1, *x.shape[x.ndim - rank - 1:]))

    def restore(y: Array) -> Array:
        return y.reshape((*batch, *y.shape[1:]))

    return flat, restore


def same_dtype(op: str, **arrays: Array | None) -> None:
    """All given arrays share one dtype (jaxconv never promotes silently; layers cast)."""
    given = {name: a.dtype for name, a in arrays.items() if a is not None}
    if len(set(given.values())) > 1:
        described = ", ".join(f"{name} {jnp.dtype(d).name}" for name, d in given.items())
        raise TypeError(f"{op}: dtypes differ ({described}); cast them to one dtype first")


def bias_shape(op: str, bias: Array | None, out_channels: int) -> None:
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(
            f"{op}: bias shape {tuple(bias.shape)} does not match the {out_channels} output "
            f"channels; expected ({out_channels},)"
        )


def add_bias(y: Array, bias: Array | None) -> Array:
    return y if bias is None else y + bias.reshape((1,) * (y.ndim - 1) + bias.shape)
