"""Rewrites of dense and grouped convolutions into shapes XLA's CPU backend runs faster:
``patches`` (im2col + one matmul), ``split`` (one dense conv per group), ``row_taps`` and
``depth_taps`` (one conv of one rank less over the taps of the first spatial dim)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.functional.formulations.channel_matmul import matmul
from jaxconv.functional.formulations.lax_conv import xla_or_canonical
from jaxconv.functional.formulations.spec import (
    ConvSpec,
    padded_view,
    taps,
    unsupported_dense,
    zero_pad,
)
from jaxconv.tuning import machine
from jaxconv.typing import Array


def ynnpack_takes(spec: ConvSpec) -> bool:
    """Whether jaxlib 0.10's YNNPACK (when on) takes this dense 2-D conv or the convs of its
    gradient: 2-D, no input dilation, one group. YNNPACK also wants more than 16 channels in or
    out, but the kernel gradient's conv has the batch as its channels, so a conv of 16
    channels still has one of its three convs taken (measured: 86 ms of a 450 ms training step
    in one 16->16 kernel gradient)."""
    return (spec.rank == 2 and all(d == 1 for d in spec.input_dilation)
            and spec.feature_group_count == 1)


def slow_ynnpack_takes(spec: ConvSpec) -> bool:
    """Whether YNNPACK takes ``spec`` in its compilation on a CPU class where it was measured
    slower than XLA's own convolutions (`jaxconv.tuning.machine`)."""
    return ynnpack_takes(spec) and machine.slow_ynnpack_convolutions(
        spec.compilation.option(machine.YNN_OPTION))


def dense_2d(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A dense conv inside another formulation: `row_taps` where YNNPACK would take it on a
    CPU where it is slow, `canonical` elsewhere (`xla` where that cannot express it)."""
    if jax.default_backend() == "cpu" and slow_ynnpack_takes(spec):
        return row_taps(x, kernel, spec)
    return xla_or_canonical(x, kernel, spec)


def unsupported_patches(spec: ConvSpec) -> str | None:
    return unsupported_dense(spec, "patches")


def patches(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A dense conv as im2col: every output pixel's input patch laid out along the channel
    axis (one strided slice per tap, concatenated), then the 1x1 `matmul` with the kernel read
    as a ``(taps * C_in, C_out)`` matrix.

    The patch tensor is ``taps`` times the input, so this pays only where the input is thin: a
    3x3 stem on a grey image makes a 9-channel tensor and one small matmul, where XLA's CPU
    convolution (and, above all, its kernel gradient) handles one input channel poorly.
    """
    x = zero_pad(x, spec.padding)
    views = [padded_view(x, offset, spec) for _, offset in taps(spec)]
    p = jnp.concatenate(views, axis=-1) if len(views) > 1 else views[0]
    ones = (1,) * spec.rank
    flat = dataclasses.replace(
        spec, input_shape=p.shape, kernel_shape=(*ones, spec.patch_size, spec.out_channels),
        strides=ones, padding=((0, 0),) * spec.rank, kernel_dilation=ones)
    return matmul(p, kernel.reshape(flat.kernel_shape), flat)


def unsupported_split(spec: ConvSpec) -> str | None:
    if spec.feature_group_count == 1:
        return "feature_group_count=1 (nothing to split)"
    return None


def split(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A grouped conv as one dense `lax.conv_general_dilated` per group, concatenated.

    XLA's CPU backend runs grouped convolutions, and above all their backward pass, far slower
    than the same number of dense convolutions of the group's size. Each part is computed as
    `dense_2d` would.
    """
    groups = spec.feature_group_count
    cin, cout = spec.in_channels // groups, spec.out_channels // groups
    dense = dataclasses.replace(spec, input_shape=(*spec.input_shape[:-1], cin),
                                kernel_shape=(*spec.kernel_shape[:-1], cout),
                                feature_group_count=1)
    parts = [dense_2d(x[..., g * cin:(g + 1) * cin], kernel[..., g * cout:(g + 1) * cout],
                      dense) for g in range(groups)]
    return jnp.concatenate(parts, axis=-1)


def unsupported_depth_taps(spec: ConvSpec) -> str | None:
    if spec.rank != 3:
        return f"the conv is {spec.rank}-D; depth taps are for 3-D convs"
    return unsupported_dense(spec, "depth taps")


def unsupported_row_taps(spec: ConvSpec) -> str | None:
    if spec.rank != 2:
        return f"the conv is {spec.rank}-D; row taps are for 2-D convs"
    return unsupported_dense(spec, "row taps")


def _leading_taps(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A dense N-D conv as one (N-1)-D conv: the taps of the first spatial dim side by side
    along the channel axis.

    Each output index ``o`` of that dim reads inputs ``o * s + t * d`` of the zero-padded
    input, one per tap ``t``; laying those slices along the channels gives a batch of ``B *
    O`` inputs with ``taps * C_in`` channels, and the kernel read as ``(*rest, taps * C_in,
    C_out)`` finishes the sum in one conv of one rank less. Taps that read only padding are
    left out.
    """
    (lo, hi), stride, dilation = spec.padding[0], spec.strides[0], spec.kernel_dilation[0]
    size, out_size = spec.input_shape[1], spec.output_shape[1]
    reads_data = [t for t in range(spec.kernel_shape[0])
                  if any(lo <= t * dilation + o * stride < lo + size for o in range(out_size))]
    first, last = (reads_data[0], reads_data[-1]) if reads_data else (0, 0)
    x = zero_pad(x, ((lo, hi), *((0, 0),) * (spec.rank - 1)))
    views = [lax.slice_in_dim(x, t * dilation, t * dilation + (out_size - 1) * stride + 1,
                              stride, axis=1) for t in range(first, last + 1)]
    p = jnp.concatenate(views, axis=-1) if len(views) > 1 else views[0]
    p = p.reshape(-1, *p.shape[2:])
    w = jnp.moveaxis(kernel[first:last + 1], 0, -3)
    w = w.reshape(*w.shape[:-3], -1, spec.out_channels)
    lower = dataclasses.replace(
        spec, input_shape=p.shape, kernel_shape=w.shape, strides=spec.strides[1:],
        padding=spec.padding[1:], input_dilation=spec.input_dilation[1:],
        kernel_dilation=spec.kernel_dilation[1:])
    y = xla_or_canonical(p, w, lower)
    return y.reshape(x.shape[0], out_size, *y.shape[1:])


def depth_taps(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A 3-D conv as one 2-D conv: the input's depth taps side by side along the channel axis
    (`_leading_taps`). XLA's CPU backend runs 3-D convolutions, and above all their backward
    pass, far slower than 2-D ones of the same work.
    """
    return _leading_taps(x, kernel, spec)


def row_taps(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A 2-D conv as one 1-D conv along the width: the input's row taps side by side along the
    channel axis (`_leading_taps`), a tensor ``k_h`` times the input.

    jaxlib 0.10 hands 2-D convolutions (and their gradients' convolutions) to YNNPACK, which
    on CPUs without AVX-512 runs them several times slower than XLA's own; it takes no 1-D
    convolution, so this one stays with XLA.
    """
    return _leading_taps(x, kernel, spec)
