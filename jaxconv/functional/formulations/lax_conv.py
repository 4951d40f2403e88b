"""``xla``, the reference (`jax.lax.conv_general_dilated` as it is), and ``canonical``: the same
forward with both gradients written as channels-last forward convs."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
from jax import lax

from jaxconv.functional.formulations.primitive import Backward, bilinear_primitive
from jaxconv.functional.formulations.spec import (
    ConvSpec,
    dimension_numbers,
    is_empty,
    unsupported_lax_extras,
)
from jaxconv.typing import Array


def xla(x: Array, kernel: Array, spec: ConvSpec, *,
        conv_general_dilated: Callable[..., Array] = lax.conv_general_dilated) -> Array:
    """`lax.conv_general_dilated` in channels-last layout: the reference formulation."""
    extra = {}
    if spec.preferred_element_type is not None:
        extra["preferred_element_type"] = spec.preferred_element_type
    return conv_general_dilated(
        x, kernel, spec.strides, spec.padding,
        lhs_dilation=spec.input_dilation, rhs_dilation=spec.kernel_dilation,
        dimension_numbers=dimension_numbers(spec.rank),
        feature_group_count=spec.feature_group_count, precision=spec.precision, **extra)


def transposed_kernel(kernel: Array, groups: int) -> Array:
    """The kernel of the input gradient: spatially flipped, input and output channels swapped
    within each group: ``(*k, C_in/g, C_out) -> (*k, C_out/g, C_in)``."""
    *spatial, cin_g, cout = kernel.shape
    k = jnp.flip(kernel, axis=tuple(range(len(spatial))))
    k = k.reshape(*spatial, cin_g, groups, cout // groups)
    k = jnp.moveaxis(k, len(spatial), -1)          # (*k, g, C_out/g, C_in/g)
    k = jnp.swapaxes(k, -3, -2)                    # (*k, C_out/g, g, C_in/g)
    return k.reshape(*spatial, cout // groups, groups * cin_g)


def _input_grad(dy: Array, kernel: Array, spec: ConvSpec) -> Array:
    """``dy`` zero-inserted by the strides, convolved with `transposed_kernel` over mirrored
    padding."""
    rank, out = spec.rank, dy.shape[1:-1]
    pads = []
    for n, o, (lo, _), w, s in zip(spec.input_shape[1:-1], out, spec.padding, spec.window,
                                   spec.strides):
        low = w - 1 - lo
        pads.append((low, n - ((o - 1) * s + 1) - low + w - 1))
    lhs, lhs_dilation = dy, spec.strides
    if any(w > (o - 1) * s + 1 for w, o, s in zip(spec.window, out, spec.strides)) \
            and any(s > 1 for s in spec.strides):
        # XLA swaps the operands of a conv whose window exceeds its input, and with input
        # dilation the swapped conv is malformed (the compiler aborts the process): insert
        # the zeros here instead.
        lhs = lax.pad(dy, dy.dtype.type(0),
                      ((0, 0, 0), *((0, 0, s - 1) for s in spec.strides), (0, 0, 0)))
        lhs_dilation = (1,) * rank
    return lax.conv_general_dilated(
        lhs, transposed_kernel(kernel, spec.feature_group_count).astype(dy.dtype),
        (1,) * rank, pads, lhs_dilation=lhs_dilation, rhs_dilation=spec.kernel_dilation,
        dimension_numbers=dimension_numbers(rank), feature_group_count=spec.feature_group_count,
        precision=spec.precision)


def _kernel_grad(x: Array, dy: Array, spec: ConvSpec) -> Array:
    """The input with its channels as the batch and its batch as the channels, convolved with
    ``dy`` laid out as a ``(*out, B, C_out)`` kernel: the strides become the kernel dilation
    and the dilation the strides (groups through ``batch_group_count``)."""
    out = dy.shape[1:-1]
    pads = []
    for n, o, (lo, _), k, s, d in zip(spec.input_shape[1:-1], out, spec.padding,
                                      spec.kernel_shape[:-2], spec.strides,
                                      spec.kernel_dilation):
        pads.append((lo, (k - 1) * d + (o - 1) * s + 1 - n - lo))
    xt = jnp.moveaxis(x, (0, x.ndim - 1), (x.ndim - 1, 0))      # (C_in, *spatial, B)
    dyt = jnp.moveaxis(dy, 0, -2)                               # (*out, B, C_out)
    dk = lax.conv_general_dilated(
        xt, dyt.astype(x.dtype), spec.kernel_dilation, pads, rhs_dilation=spec.strides,
        dimension_numbers=dimension_numbers(spec.rank), batch_group_count=spec.feature_group_count,
        precision=spec.precision,
        preferred_element_type=jnp.float32 if jnp.finfo(x.dtype).bits < 32 else None)
    return jnp.moveaxis(dk, 0, -2)                              # (*k, C_in/g, C_out)


#: Both gradients as forward convs in the channels-last layout. Autodiff writes the same sums
#: with other dimension numbers, which XLA's CPU backend runs far slower inside a loop
#: (jax-ml/jax#12868).
_canonical = bilinear_primitive("canonical", xla, Backward(_input_grad, _kernel_grad))


def unsupported_canonical(spec: ConvSpec) -> str | None:
    return unsupported_lax_extras(spec)


def canonical(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """`xla`'s forward with both gradients written as channels-last forward convs (the
    transposes of a bilinear primitive): the same sums as autodiff's, and as fast inside
    ``lax.scan`` / ``fori_loop`` as outside (training several steps per compiled call, gradient
    accumulation). Forward-mode derivatives are the same conv of the tangents.
    """
    if is_empty(spec):
        return xla(x, kernel, spec)
    return _canonical(x, kernel, spec)


def xla_or_canonical(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """`canonical` where it can express ``spec``, `xla` elsewhere: a dense conv inside another
    formulation."""
    return (xla if unsupported_canonical(spec) else canonical)(x, kernel, spec)
