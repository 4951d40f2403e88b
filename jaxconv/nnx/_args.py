"""Argument handling shared by the NNX and Linen faces (no arithmetic lives here)."""

from __future__ import annotations

from collections.abc import Sequence

from jaxconv.functional import _checks
from jaxconv.typing import Array, Shape


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
