"""Argument handling every layer face shares: kernel sizes and shapes, input checks, masks,
``data_format`` (no arithmetic lives here).

Public so that the layers built on the NNX ones (`jaxconv.linen`, which sits above `jaxconv.nnx`
in the layer order, and `jaxconv.interop`) and users writing their own layers resolve arguments
and word errors exactly as `jaxconv.nnx` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp

from jaxconv.functional import _checks
from jaxconv.typing import Array, Shape


def frozen(value: Any) -> Any:
    """Lists (padding pairs, strides) as tuples: a layer's attributes must hash, so that its
    GraphDef can be a static argument of ``jax.jit``."""
    if isinstance(value, list | tuple):
        return tuple(frozen(v) for v in value)
    return value


def kernel_size_tuple(kernel_size: int | Sequence[int], layer: str) -> Shape:
    """Flax's rule: an int kernel size means a 1-D convolution."""
    if isinstance(kernel_size, bool):
        raise TypeError(f"{layer}: kernel_size={kernel_size!r} is a bool; expected ints")
    if _checks.integer(kernel_size) is not None:
        kernel_size = (kernel_size,)
    size = tuple(_checks.integer(k) for k in kernel_size)
    if not size or not all(k is not None and k >= 1 for k in size):
        raise ValueError(f"{layer}: kernel_size={kernel_size!r} must be positive ints, one per "
                         "spatial dim")
    return size


def check_input_rank(x: Array, kernel_size: int | Sequence[int], layer: str) -> None:
    """Refuses an image given to a layer whose int ``kernel_size`` made it 1-D.

    Flax would treat the image's rows as extra batch axes and run a 1-D conv along its width.
    """
    if isinstance(kernel_size, int) and x.ndim > 3:
        raise ValueError(
            f"{layer}: kernel_size={kernel_size} is an int, which makes a 1-D convolution, but the "
            f"input has shape {tuple(x.shape)} ({x.ndim} dims); pass kernel_size="
            f"{(kernel_size,) * (x.ndim - 2)} for a {x.ndim - 2}-D convolution, or "
            f"kernel_size=({kernel_size},) to run a 1-D one over several batch axes")


def kernel_shape(layer: str, size: Shape, in_features: int, out_features: int, groups: int = 1,
                 *, out_name: str = "out_features") -> Shape:
    """The kernel shape of an NNX or Linen ``layer`` (its class name): ``Conv``
    ``(*size, C_in / g, C_out)`` and ``Pointwise`` ``(C_in / g, C_out)`` (Flax's HWIO),
    ``DepthwiseConv`` ``(*size, 1, C_out)``, ``ConvTranspose`` ``(*size, C_out / g, C_in)``
    (Keras's). Checks that ``groups`` divides a transposed conv's outputs, naming them as the
    layer's argument ``out_name`` does."""
    groups = max(groups, 1)
    if layer == "ConvTranspose" and out_features % groups:
        raise ValueError(f"ConvTranspose: feature_group_count={groups} does not divide "
                         f"{out_name}={out_features}")
    return {"Conv": lambda: (*size, in_features // groups, out_features),
            "Pointwise": lambda: (in_features // groups, out_features),
            "DepthwiseConv": lambda: (*size, 1, out_features),
            "ConvTranspose": lambda: (*size, out_features // groups, in_features)}[layer]()


def check_mask(mask: Array | None, kernel_shape: Shape, layer: str) -> None:
    if mask is not None and tuple(mask.shape) != tuple(kernel_shape):
        raise ValueError(f"{layer}: mask shape {tuple(mask.shape)} does not match the kernel "
                         f"shape {tuple(kernel_shape)}")


def check_in_features(x: Array, in_features: int, layer: str) -> None:
    if x.shape[-1] != in_features:
        raise ValueError(f"{layer}: input shape {tuple(x.shape)} has {x.shape[-1]} channels but "
                         f"the layer was built with in_features={in_features}")


def strides_for_pointwise(strides, layer: str):
    """A `Pointwise` layer's kernel is ``(C_in, C_out)``: an int stride other than 1 has no rank."""
    single = _checks.integer(strides)
    if single is not None and single != 1:
        raise ValueError(
            f"{layer}: strides={strides} is ambiguous for a (C_in, C_out) kernel; pass one stride "
            f"per spatial dim, e.g. strides=({single}, {single}) for images")
    if strides is None or single is not None:
        return 1
    return _checks.int_tuple("strides", strides, len(tuple(strides)))


DATA_FORMATS = ("channels_last", "channels_first")


def data_format(value: object, layer: str) -> str:
    """Keras's ``data_format``: where the channel axis is in the layer's inputs and outputs."""
    if not isinstance(value, str) or value.lower() not in DATA_FORMATS:
        raise ValueError(f"{layer}: data_format={value!r} is not one of "
                         f"{', '.join(map(repr, DATA_FORMATS))}")
    return value.lower()


def _channel_axis(x: Array, rank: int | None, layer: str) -> int:
    rank = x.ndim - 2 if rank is None else rank
    if rank < 1 or x.ndim < rank + 1:
        raise ValueError(f"{layer}: input shape {tuple(x.shape)} has too few dims for "
                         "data_format='channels_first'; expected (*batch, C, *spatial)")
    return x.ndim - rank - 1


def to_channels_last(x: Array, rank: int | None, fmt: str, layer: str) -> Array:
    """``(*batch, C, *spatial) -> (*batch, *spatial, C)`` for ``channels_first`` (one transpose);
    ``rank`` is the spatial rank, ``None`` for one batch axis."""
    if fmt == "channels_last":
        return x
    return jnp.moveaxis(x, _channel_axis(x, rank, layer), -1)


def from_channels_last(y: Array, rank: int | None, fmt: str) -> Array:
    """The inverse of `to_channels_last` on a layer's output."""
    if fmt == "channels_last":
        return y
    rank = y.ndim - 2 if rank is None else rank
    return jnp.moveaxis(y, -1, y.ndim - rank - 1)


def spatial_rank(layer: object) -> int | None:
    """A layer's spatial rank: from its kernel size, or a `Pointwise` layer's per-dim strides
    (``None``, one batch axis assumed, when they do not say)."""
    kernel_size = getattr(layer, "kernel_size", None)
    if kernel_size is not None:
        return len(kernel_size_tuple(kernel_size, type(layer).__name__))
    strides = getattr(layer, "strides", None)
    return None if strides is None or _checks.integer(strides) is not None else len(strides)


def channels_first_aware(call: Callable[[Any, Array], Array]) -> Callable[[Any, Array], Array]:
    """Wraps a layer's channels-last ``__call__`` so that a layer built with
    ``data_format="channels_first"`` takes and returns ``(*batch, C, *spatial)`` arrays: one
    transpose in, one out, around the unchanged channels-last computation."""

    @functools.wraps(call)
    def wrapped(self: Any, inputs: Array) -> Array:
        fmt = data_format(self.data_format, type(self).__name__)
        if fmt == "channels_last":
            return call(self, inputs)
        rank = spatial_rank(self)
        if rank is None:
            raise ValueError(
                f"{type(self).__name__}: data_format='channels_first' needs the spatial rank, "
                "which an int stride does not give; pass one stride per spatial dim, e.g. "
                "strides=(1, 1) for images")
        x = to_channels_last(inputs, rank, fmt, type(self).__name__)
        return from_channels_last(call(self, x), rank, fmt)

    return wrapped
