"""Depthwise and depthwise-separable convolutions.

A depthwise conv is a grouped conv with one group per input channel: its kernel has Flax's HWIO
layout ``(*kernel_spatial, 1, C_in * depth_multiplier)``, so parameters move unchanged to and
from ``flax.nnx.Conv(feature_group_count=C_in)``. Output channel ``c * M + m`` is the ``m``-th
filter of input channel ``c`` (Keras's and PyTorch's order).
"""

from __future__ import annotations

from typing import Any

import jax

from jaxconv.functional import _checks
from jaxconv.functional.conv import pointwise, prepare, run
from jaxconv.functional.formulations import Compilation
from jaxconv.typing import Array, ImplLike, IntOrSeq, PaddingLike


def _depth_multiplier(x_shape, kernel_shape, depth_multiplier: int | None, op: str) -> int:
    channels, out_channels = x_shape[-1], kernel_shape[-1]
    if len(kernel_shape) < 3 or kernel_shape[-2] != 1:
        raise ValueError(
            f"{op}: kernel shape {tuple(kernel_shape)} is not a depthwise kernel; expected "
            f"(*kernel_spatial, 1, C_in * depth_multiplier)")
    if out_channels % channels:
        raise ValueError(
            f"{op}: the kernel's {out_channels} output channels are not a multiple of the input's "
            f"{channels} channels (kernel shape {tuple(kernel_shape)}); expected "
            f"(*kernel_spatial, 1, {channels} * depth_multiplier)")
    multiplier = out_channels // channels
    if depth_multiplier is not None and depth_multiplier != multiplier:
        raise ValueError(
            f"{op}: depth_multiplier={depth_multiplier!r} but the kernel shape "
            f"{tuple(kernel_shape)} gives {out_channels} / {channels} = {multiplier}")
    return multiplier


def depthwise_conv(
    x: Array, kernel: Array, bias: Array | None = None, *, strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME", padding_mode: str = "zeros", kernel_dilation: IntOrSeq = 1,
    depth_multiplier: int | None = None, precision: Any = None, impl: ImplLike = "auto",
    compilation: Compilation | None = None,
) -> Array:
    """Convolves each input channel with its own ``depth_multiplier`` filters.

    Args:
      x: ``(*batch, *spatial, C)``.
      kernel: ``(*kernel_spatial, 1, C * depth_multiplier)``.
      bias: ``(C * depth_multiplier,)`` or ``None``.
      depth_multiplier: optional check; the kernel's shape determines it.
      strides, padding, padding_mode, kernel_dilation, precision, impl, compilation: as in
        `conv`.

    Returns:
      ``(*batch, *out_spatial, C * depth_multiplier)``.

    >>> import jax.numpy as jnp
    >>> depthwise_conv(jnp.ones((2, 16, 16, 8)), jnp.ones((3, 3, 1, 16))).shape
    (2, 16, 16, 16)
    """
    with jax.named_scope("jaxconv.depthwise_conv"):
        _checks.kernel_rank(tuple(kernel.shape), op="depthwise_conv")
        _depth_multiplier(x.shape, kernel.shape, depth_multiplier, "depthwise_conv")
        prepared = prepare(
            x.shape, kernel.shape, op="depthwise_conv", strides=strides, padding=padding,
            padding_mode=padding_mode, kernel_dilation=kernel_dilation,
            feature_group_count=x.shape[-1], precision=precision, compilation=compilation)
        return run(prepared, x, kernel, bias, op="depthwise_conv", impl=impl)


def separable_conv(
    x: Array, depthwise_kernel: Array, pointwise_kernel: Array, bias: Array | None = None, *,
    strides: IntOrSeq = 1, padding: PaddingLike = "SAME", padding_mode: str = "zeros",
    kernel_dilation: IntOrSeq = 1, precision: Any = None, impl: ImplLike = "auto",
    compilation: Compilation | None = None,
) -> Array:
    """Depthwise conv followed by a 1x1 conv (MobileNetV1's separable conv; Keras's
    ``SeparableConv``), with one bias after the 1x1.

    Args:
      x: ``(*batch, *spatial, C)``.
      depthwise_kernel: ``(*kernel_spatial, 1, C * depth_multiplier)``.
      pointwise_kernel: ``(C * depth_multiplier, C_out)`` or ``(1, ..., 1, C * M, C_out)``.
      bias: ``(C_out,)`` or ``None``; the depthwise part has none.
      strides, padding, padding_mode, kernel_dilation: of the depthwise part, as in `conv`;
        the 1x1 runs at stride 1 on its output.
      precision: passed to XLA, for both parts.
      impl: formulation of the depthwise part (the 1x1 is always a matmul).
      compilation: as in `conv`, for both parts.

    Returns:
      ``(*batch, *out_spatial, C_out)``, ``out_spatial`` as the depthwise conv gives it.

    Raises:
      ValueError: ``depthwise_kernel`` is not ``(*kernel_spatial, 1, C * M)``,
        ``pointwise_kernel`` is not a 1x1 kernel from ``C * M`` channels, or as in
        `depthwise_conv` and `pointwise`.

    >>> import jax.numpy as jnp
    >>> separable_conv(jnp.ones((2, 16, 16, 8)), jnp.ones((3, 3, 1, 8)), jnp.ones((8, 32)),
    ...                strides=2).shape
    (2, 8, 8, 32)
    """
    with jax.named_scope("jaxconv.separable_conv"):
        y = depthwise_conv(x, depthwise_kernel, strides=strides, padding=padding,
                           padding_mode=padding_mode, kernel_dilation=kernel_dilation,
                           precision=precision, impl=impl, compilation=compilation)
        return pointwise(y, pointwise_kernel, bias, precision=precision,
                         compilation=compilation)
