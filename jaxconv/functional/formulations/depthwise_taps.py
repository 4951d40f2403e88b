"""``shift``: a depthwise conv as one strided slice and multiply-add per kernel tap, with both
gradients computed in one loop over cache-sized chunks of the batch."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.functional.formulations.primitive import Backward, bilinear_primitive
from jaxconv.functional.formulations.spec import (
    ConvSpec,
    accumulator,
    padded_view,
    taps,
    unsupported_lax_extras,
    zero_pad,
)
from jaxconv.typing import Array

#: Bytes of input per step of the backward's loop over the batch, for a 3x3 kernel (larger
#: kernels take proportionally less): small enough for one step's tap views and gradients to
#: stay in cache (measured on the CPU bench: 28x28x64 images, batch 128: kernel gradient 70 ms
#: as one pass per tap, 15-25 ms in 0.25-1 MB steps; 7x7 on 16x16x128, batch 64: backward
#: 34 ms in 1 MB steps, 16 ms in 0.2 MB steps).
CHUNK_BYTES = 1 << 20


def unsupported_shift(spec: ConvSpec) -> str | None:
    if not spec.is_depthwise:
        return (f"not depthwise (feature_group_count={spec.feature_group_count}, "
                f"{spec.in_channels} input channels)")
    return unsupported_lax_extras(spec)


def _forward(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    # The padded copy is written once, with the input's producer (say BatchNorm + ReLU) fused
    # in; reading the taps straight from the input would make XLA recompute that producer
    # once per tap.
    x = zero_pad(x, spec.padding)
    multiplier = spec.out_channels // spec.in_channels
    if multiplier > 1:
        x = jnp.repeat(x, multiplier, axis=-1)
    w = kernel.reshape((-1, *(1,) * (x.ndim - 1), spec.out_channels))
    # bf16 products are exact in f32; summing the taps there and rounding once keeps a 7x7
    # tap sum as accurate as XLA's conv (which also accumulates in f32).
    acc = accumulator(x.dtype)
    y = None
    for index, offset in taps(spec):
        term = padded_view(x, offset, spec).astype(acc) * w[index].astype(acc)
        y = term if y is None else y + term
    return y.astype(x.dtype)


def chunk_size(batch: int, image_bytes: int) -> int:
    """The largest divisor of ``batch`` whose images fit in `CHUNK_BYTES` (at least 1; the
    whole batch when it is empty)."""
    fit = max(1, CHUNK_BYTES // max(1, image_bytes))
    return max((d for d in range(1, min(batch, fit) + 1) if batch % d == 0), default=batch)


def _batch_shards(batch: int, spec: ConvSpec) -> int:
    """How many equal shards the compilation splits the batch into (1 when they do not divide
    ``batch``, or when the batch is symbolic)."""
    shards = spec.compilation.batch_shards
    return shards if isinstance(batch, int) and batch and batch % shards == 0 else 1


def _input_grad_taps(dy: Array, kernel: Array, spec: ConvSpec) -> Array | None:
    """The input gradient as the same shifted multiply-adds on the output gradient
    (zero-inserted between outputs for strides > 1), with the kernel flipped and the padding
    mirrored so that the result covers exactly the input; ``None`` when that padding would be
    negative (then the adjoint of the forward is used).

    The adjoint of the forward (each tap's product padded back into place, then summed) checks
    every tap's borders, and with strides every interior gap, at every element; this reads one
    padded copy through plain slices.
    """
    channels = spec.out_channels
    if any(s > 1 for s in spec.strides):
        dy = lax.pad(dy, dy.dtype.type(0),
                     ((0, 0, 0), *((0, 0, s - 1) for s in spec.strides), (0, 0, 0)))
    pads = tuple((w - 1 - lo, n - length + lo) for w, (lo, _), n, length in
                 zip(spec.window, spec.padding, spec.input_shape[1:-1], dy.shape[1:-1]))
    if any(p < 0 for pair in pads for p in pair):
        return None
    flipped = jnp.flip(kernel, axis=tuple(range(spec.rank)))
    flip_spec = dataclasses.replace(
        spec, input_shape=dy.shape, kernel_shape=(*spec.kernel_shape[:-2], 1, channels),
        strides=(1,) * spec.rank, padding=pads, feature_group_count=channels)
    dx = _forward(dy, flipped.astype(dy.dtype), flip_spec)
    multiplier = channels // spec.in_channels
    if multiplier > 1:
        dx = dx.reshape((*dx.shape[:-1], spec.in_channels, multiplier)).sum(-1)
    return dx


def _input_grad(dy: Array, kernel: Array, spec: ConvSpec) -> Array:
    spec = spec.with_batch(dy.shape[0])
    dx = _input_grad_taps(dy, kernel, spec)
    if dx is None:
        shape = jax.ShapeDtypeStruct(spec.input_shape, kernel.dtype)
        (dx,) = jax.linear_transpose(lambda x: _forward(x, kernel, spec), shape)(
            dy.astype(kernel.dtype))
    return dx


def _grads(x: Array | None, kernel: Array | None, dy: Array, spec: ConvSpec
           ) -> tuple[Array | None, Array | None]:
    """The input gradient (where ``kernel`` is given) and the kernel gradient (where ``x`` is
    given) in one loop over cache-sized chunks of the batch.

    The kernel gradient ``dk[t, c] = sum view_t(x) * dy`` as one pass over the whole batch per
    tap re-reads the input and the output gradient from memory for every tap; and the input
    gradient reads ``dy`` once per tap, so XLA fuses ``dy``'s producer into it and recomputes
    that once per tap. The loop's inputs are written once, and each chunk's taps read from
    cache. With the batch split over devices (``spec.compilation.batch_shards``) each step
    takes a chunk of every shard and the kernel gradient is summed per shard until the loop
    ends, so devices exchange nothing inside the loop.
    """
    acc_dtype = accumulator(dy.dtype)
    count = math.prod(spec.kernel_shape[:-2])
    multiplier = spec.out_channels // spec.in_channels
    batch = dy.shape[0]
    shards = _batch_shards(batch, spec)

    def tap_sum(product):
        if shards == 1:
            return jnp.sum(product, axis=tuple(range(product.ndim - 1)))
        parts = product.reshape(shards, -1, *product.shape[1:])
        return jnp.sum(parts, axis=tuple(range(1, parts.ndim - 1)))

    def step(dk, xc, dc):
        chunk_spec = spec.with_batch(dc.shape[0])
        dxc = None if kernel is None else _input_grad(dc, kernel, chunk_spec)
        if xc is not None:
            xp = zero_pad(xc, spec.padding)
            xp = jnp.repeat(xp, multiplier, axis=-1) if multiplier > 1 else xp
            wide = dc.astype(acc_dtype)
            dk = dk + jnp.stack([tap_sum(padded_view(xp, offset, chunk_spec).astype(acc_dtype)
                                         * wide) for _, offset in taps(spec)])
        return dk, dxc

    dk0 = None if x is None else jnp.zeros(
        (count, spec.out_channels) if shards == 1 else (count, shards, spec.out_channels),
        acc_dtype)
    # per-chunk work grows with the taps: 3x3 measured best at 1 MiB of input, 7x7 at 1/4 of it
    image_bytes = math.prod(spec.input_shape[1:]) * dy.dtype.itemsize * multiplier * count // 9
    # a symbolic batch (an export for any batch) is one pass: its chunks cannot be sized
    chunk = chunk_size(batch // shards, image_bytes) if isinstance(batch, int) else batch
    steps = batch // shards // chunk if isinstance(batch, int) and chunk else 1
    if steps <= 1:
        dk, dx = step(dk0, x, dy)
    else:
        # step s takes chunk s of every shard, so a batch split over devices stays split
        def split(a):
            a = a.reshape(shards, steps, chunk, *a.shape[1:])
            return jnp.moveaxis(a, 1, 0).reshape(steps, shards * chunk, *a.shape[3:])

        def body(carry, pair):
            return step(carry, *pair)

        dk, dx = lax.scan(body, dk0, (None if x is None else split(x), split(dy)))
        if dx is not None:
            dx = jnp.moveaxis(dx.reshape(steps, shards, chunk, *dx.shape[2:]), 0, 1)
            dx = dx.reshape((batch, *dx.shape[3:]))
    if dk is not None:
        dk = (dk.sum(1) if shards > 1 else dk).reshape(spec.kernel_shape)
    return dx, dk


_shift = bilinear_primitive("shift", _forward, Backward(
    input_grad=lambda dy, kernel, spec: _grads(None, kernel, dy, spec)[0],
    kernel_grad=lambda x, dy, spec: _grads(x, None, dy, spec)[1],
    both=lambda x, kernel, dy, spec: _grads(x, kernel, dy, spec)))


def shift(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A depthwise conv as one strided slice and multiply-add per kernel tap.

    ``y[o] = sum_t x[o * s + t * d] * k[t]`` channel by channel: for a 3x3 kernel, nine shifted
    views of the padded input, each scaled by one tap's per-channel weights. A depth multiplier
    ``M`` repeats each input channel ``M`` times first. A bilinear primitive whose backward
    (`_grads`) is one loop over cache-sized chunks of the batch: the input gradient as the same
    taps on the output gradient with the kernel flipped, and the kernel gradient as each tap's
    summed products.
    """
    return _shift(x, kernel, spec)
