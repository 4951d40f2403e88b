"""Numerically equivalent formulations of a convolution, and the tables `impl=` chooses from.

A `ConvSpec` is a forward convolution with every argument resolved (explicit zero padding, one
int per spatial dim). A `Formulation` computes a `ConvSpec` on a batched ``(B, *spatial, C)``
input and says, for a spec it cannot express, why not. Adding a formulation is adding a function
and a row to `CONV`; `jaxconv.functional.policy` decides which row ``impl="auto"`` takes.

``"xla"`` is always `jax.lax.conv_general_dilated`, the reference every other formulation is
pinned to by the tests.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxconv.functional import cpu
from jaxconv.typing import Array, Pads, Shape

_FORWARD_MODE: contextvars.ContextVar[bool] = contextvars.ContextVar("jaxconv_forward_mode",
                                                                   default=False)


@contextlib.contextmanager
def forward_mode_ad() -> Iterator[None]:
    """Ops traced inside support forward-mode autodiff (``jax.jvp``, ``jax.jacfwd``,
    ``jax.hessian``).

    Formulations with a hand-written backward pass (a custom VJP: ``matmul``, ``shift``) have
    no forward mode; inside this context they use plain autodiff of the same forward
    computation instead: the same values, a slower reverse mode. Tracing happens when a jitted
    function is first called, so enter the context around that call.

    >>> import jax, jax.numpy as jnp
    >>> from jaxconv import functional as F
    >>> x, k = jnp.ones((1, 4, 4, 2)), jnp.ones((1, 1, 2, 3))
    >>> with F.forward_mode_ad():
    ...     y, dy = jax.jvp(lambda x: F.conv(x, k), (x,), (x,))
    >>> dy.shape
    (1, 4, 4, 3)
    """
    token = _FORWARD_MODE.set(True)
    try:
        yield
    finally:
        _FORWARD_MODE.reset(token)


def in_forward_mode_ad() -> bool:
    """Whether the caller traces inside `forward_mode_ad` (hand-written backwards stand down)."""
    return _FORWARD_MODE.get()


#: Largest patch (kernel taps x input channels) of a "narrow" conv: 3x3 on RGB is 27.
NARROW_PATCH = 32


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A forward convolution with every argument resolved; what a formulation computes.

    Attributes:
      input_shape: the batched input, ``(B, *spatial, C_in)``, after any non-zero fill.
      kernel_shape: ``(*kernel_spatial, C_in // groups, C_out)``.
      padding: zero padding, one ``(low, high)`` pair per spatial dim.
    """

    input_shape: Shape
    kernel_shape: Shape
    strides: Shape
    padding: Pads
    input_dilation: Shape
    kernel_dilation: Shape
    feature_group_count: int
    precision: Any = None
    preferred_element_type: Any = None

    @property
    def rank(self) -> int:
        return len(self.kernel_shape) - 2

    @property
    def in_channels(self) -> int:
        return self.input_shape[-1]

    @property
    def out_channels(self) -> int:
        return self.kernel_shape[-1]

    @property
    def window(self) -> Shape:
        """Spatial extent of the dilated kernel."""
        return tuple((k - 1) * d + 1 for k, d in
                     zip(self.kernel_shape[:-2], self.kernel_dilation))

    @property
    def output_shape(self) -> Shape:
        spatial = []
        for n, (lo, hi), w, s, di in zip(self.input_shape[1:-1], self.padding, self.window,
                                         self.strides, self.input_dilation):
            span = (n - 1) * di + 1 + lo + hi - w
            spatial.append(span // s + 1 if span >= 0 else 0)
        return (self.input_shape[0], *spatial, self.out_channels)

    @property
    def is_pointwise(self) -> bool:
        return all(k == 1 for k in self.kernel_shape[:-2])

    @property
    def is_depthwise(self) -> bool:
        return self.feature_group_count > 1 and self.feature_group_count == self.in_channels

    @property
    def patch_size(self) -> int:
        """Input values one output pixel reads per group: kernel taps x input channels."""
        return math.prod(self.kernel_shape[:-2]) * self.kernel_shape[-2]

    @property
    def shape_class(self) -> str:
        """The class the ``auto`` policy keys on: pointwise, grouped_pointwise, depthwise,
        grouped, narrow (a dense conv reading at most `NARROW_PATCH` values per output pixel,
        like a 3x3 stem on grey or RGB images) or dense."""
        if self.is_pointwise:
            return "pointwise" if self.feature_group_count == 1 else "grouped_pointwise"
        if self.is_depthwise:
            return "depthwise"
        if self.feature_group_count > 1:
            return "grouped"
        return "narrow" if self.patch_size <= NARROW_PATCH else "dense"

    def macs(self) -> int:
        """Multiply-accumulates of the textbook count (every tap of every window)."""
        taps = math.prod(self.kernel_shape[:-2]) * self.kernel_shape[-2]
        return math.prod(self.output_shape) * taps


@dataclasses.dataclass(frozen=True)
class Formulation:
    """One way to compute a `ConvSpec`.

    Attributes:
      name: the ``impl=`` string.
      compute: ``(x, kernel, spec) -> y`` on a batched input padded with zeros by ``spec``.
      unsupported: ``spec -> reason`` it cannot express the spec, or ``None`` when it can.
      description: one line for `plan` and the docs.
    """

    name: str
    compute: Callable[[Array, Array, ConvSpec], Array]
    unsupported: Callable[[ConvSpec], str | None]
    description: str


def _dimension_numbers(rank: int) -> lax.ConvDimensionNumbers:
    """Channels-last input/output and ``(*spatial, I, O)`` kernel, for any spatial rank."""
    lhs = (0, rank + 1, *range(1, rank + 1))
    rhs = (rank + 1, rank, *range(rank))
    return lax.ConvDimensionNumbers(lhs, rhs, lhs)


def xla(x: Array, kernel: Array, spec: ConvSpec, *,
        conv_general_dilated: Callable[..., Array] = lax.conv_general_dilated) -> Array:
    """`lax.conv_general_dilated` in channels-last layout: the reference formulation."""
    extra = {}
    if spec.preferred_element_type is not None:
        extra["preferred_element_type"] = spec.preferred_element_type
    return conv_general_dilated(
        x, kernel, spec.strides, spec.padding,
        lhs_dilation=spec.input_dilation, rhs_dilation=spec.kernel_dilation,
        dimension_numbers=_dimension_numbers(spec.rank),
        feature_group_count=spec.feature_group_count, precision=spec.precision, **extra)


def ynnpack_takes(spec: ConvSpec) -> bool:
    """Whether jaxlib 0.10's YNNPACK (when on) takes this dense 2-D conv or the convs of its
    gradient: 2-D, no input dilation, one group. YNNPACK also wants more than 16 channels in or
    out, but the kernel gradient's conv has the batch as its channels, so a conv of 16
    channels still has one of its three convs taken (measured: 86 ms of a 450 ms training step
    in one 16->16 kernel gradient)."""
    return (spec.rank == 2 and all(d == 1 for d in spec.input_dilation)
            and spec.feature_group_count == 1)


def _dense_2d(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A dense conv inside another formulation: `row_taps` where YNNPACK would take it on a
    CPU where it is slow (see `jaxconv.functional.cpu`), `canonical` elsewhere (`xla` where
    that cannot express it)."""
    if ynnpack_takes(spec) and jax.default_backend() == "cpu" \
            and cpu.slow_ynnpack_convolutions():
        return row_taps(x, kernel, spec)
    return (xla if _canonical_unsupported(spec) else canonical)(x, kernel, spec)


def _matmul_unsupported(spec: ConvSpec) -> str | None:
    if not spec.is_pointwise:
        return f"the kernel is {spec.kernel_shape[:-2]}, not 1x..x1"
    if any(d != 1 for d in spec.input_dilation):
        return f"input_dilation={spec.input_dilation}"
    return None


def _matmul_prepare(x: Array, spec: ConvSpec) -> Array:
    """Zero padding and strided subsampling: the positions a 1x..x1 kernel sees."""
    x = _zero_pad(x, spec.padding)
    if any(s != 1 for s in spec.strides):
        x = x[(slice(None), *(slice(None, None, s) for s in spec.strides), slice(None))]
    return x


def _matmul_dot(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    extra = {}
    if spec.preferred_element_type is not None:
        extra["preferred_element_type"] = spec.preferred_element_type
    groups = spec.feature_group_count
    w = kernel.reshape(kernel.shape[-2:])
    if groups == 1:
        return lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ())),
                               precision=spec.precision, **extra)
    cin_g, cout = w.shape
    xg = x.reshape((*x.shape[:-1], groups, cin_g))
    wg = w.reshape(cin_g, groups, cout // groups)
    # batch over the group axis: (g, ..., cout_g), then back to channels last.
    y = lax.dot_general(xg, wg, (((xg.ndim - 1,), (0,)), ((xg.ndim - 2,), (1,))),
                        precision=spec.precision, **extra)
    return jnp.moveaxis(y, 0, -2).reshape((*x.shape[:-1], cout))


_DATA_SHARDS: contextvars.ContextVar[int] = contextvars.ContextVar("jaxconv_data_shards",
                                                                  default=1)


@contextlib.contextmanager
def data_parallel(shards: int) -> Iterator[None]:
    """Ops traced inside see batches split into ``shards`` equal contiguous parts, one per
    device (a batch sharded along one mesh axis). Formulations that loop over the batch then
    take a part of every shard per step, so the batch stays split and no device gathers
    another's activations. `jaxconv.train`'s steps trace inside it; outside, one shard."""
    if shards < 1:
        raise ValueError(f"shards: {shards} must be at least 1")
    token = _DATA_SHARDS.set(shards)
    try:
        yield
    finally:
        _DATA_SHARDS.reset(token)


def _with_backward(forward: Callable, backward: Callable) -> Callable:
    """``forward(x, kernel, spec)`` with ``backward(x, kernel, dy, spec) -> (dx, dk)`` as its
    VJP; inside `forward_mode_ad`, plain autodiff of ``forward`` instead."""

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
    def with_vjp(x, kernel, spec):
        return forward(x, kernel, spec)

    def fwd(x, kernel, spec):
        return forward(x, kernel, spec), (x, kernel)

    def bwd(spec, residuals, dy):
        x, kernel = residuals
        dx, dk = backward(x, kernel, dy, spec)
        return dx, dk.astype(kernel.dtype)

    with_vjp.defvjp(fwd, bwd)

    def call(x: Array, kernel: Array, spec: ConvSpec) -> Array:
        return forward(x, kernel, spec) if _FORWARD_MODE.get() else with_vjp(x, kernel, spec)

    return call


def _matmul_dot_grads(x: Array, kernel: Array, dy: Array, spec: ConvSpec) -> tuple[Array, Array]:
    if spec.feature_group_count > 1:
        return jax.vjp(lambda x, kernel: _matmul_dot(x, kernel, spec), x, kernel)[1](dy)
    _, input_vjp = jax.vjp(lambda x: _matmul_dot(x, kernel, spec), x)
    (dx,) = input_vjp(dy)
    # ``dk = x^T dy`` contracts the long pixel axis of both operands, so one of them must be
    # transposed in memory first (XLA's CPU dots want the contracted axis minor in the left
    # operand). Autodiff picks the output gradient whatever its size, with its producer
    # fused into the copy; transposing whichever has fewer channels copies the least (batch
    # 128, 28x28, 1x1 conv + BatchNorm + ReLU, forward + backward: 16->64 49 -> 28 ms,
    # 64->24 53 -> 12 ms).
    axes = tuple(range(x.ndim - 1))
    if x.shape[-1] <= dy.shape[-1]:
        dk = lax.dot_general(x, dy, ((axes, axes), ((), ())), precision=spec.precision)
    else:
        dk = lax.dot_general(dy, x, ((axes, axes), ((), ())), precision=spec.precision).T
    dk = dk.reshape(kernel.shape)
    return dx, dk


_matmul_dot_custom = _with_backward(_matmul_dot, _matmul_dot_grads)


def matmul(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A 1x..x1 conv as zero padding, strided subsampling and one `dot_general` over channels.

    Each output pixel is ``kernel.T @ x[pixel]``: exactly a Dense layer at every position. With
    groups, each group of channels gets its own matrix (a batched `dot_general`). The kernel
    gradient is written out by hand (a custom VJP); inside `forward_mode_ad` it is autodiff's.
    """
    return _matmul_dot_custom(_matmul_prepare(x, spec), kernel, spec)


def _transposed_kernel(kernel: Array, groups: int) -> Array:
    """The kernel of the input gradient: spatially flipped, input and output channels swapped
    within each group: ``(*k, C_in/g, C_out) -> (*k, C_out/g, C_in)``."""
    *spatial, cin_g, cout = kernel.shape
    k = jnp.flip(kernel, axis=tuple(range(len(spatial))))
    k = k.reshape(*spatial, cin_g, groups, cout // groups)
    k = jnp.moveaxis(k, len(spatial), -1)          # (*k, g, C_out/g, C_in/g)
    k = jnp.swapaxes(k, -3, -2)                    # (*k, C_out/g, g, C_in/g)
    return k.reshape(*spatial, cout // groups, groups * cin_g)


def _canonical_grads(x: Array, kernel: Array, dy: Array, spec: ConvSpec
                     ) -> tuple[Array, Array]:
    """Both gradients of a conv as forward convs in the channels-last layout.

    Input gradient: ``dy`` zero-inserted by the strides, convolved with `_transposed_kernel`
    over mirrored padding. Kernel gradient: the input with its channels as the batch and its
    batch as the channels, convolved with ``dy`` laid out as a ``(*out, B, C_out)`` kernel,
    the strides becoming the kernel dilation and the dilation the strides (groups through
    ``batch_group_count``). Autodiff writes the same sums with other dimension numbers, which
    XLA's CPU backend runs far slower inside a loop (jax-ml/jax#12868).
    """
    rank, groups = spec.rank, spec.feature_group_count
    numbers = _dimension_numbers(rank)
    out = dy.shape[1:-1]
    pads_x = []
    for n, o, (lo, _), w, s in zip(spec.input_shape[1:-1], out, spec.padding, spec.window,
                                   spec.strides):
        low = w - 1 - lo
        pads_x.append((low, n - ((o - 1) * s + 1) - low + w - 1))
    lhs, lhs_dilation = dy, spec.strides
    if any(w > (o - 1) * s + 1 for w, o, s in zip(spec.window, out, spec.strides)) \
            and any(s > 1 for s in spec.strides):
        # XLA swaps the operands of a conv whose window exceeds its input, and with input
        # dilation the swapped conv is malformed (the compiler aborts the process): insert
        # the zeros here instead.
        lhs = lax.pad(dy, dy.dtype.type(0),
                      ((0, 0, 0), *((0, 0, s - 1) for s in spec.strides), (0, 0, 0)))
        lhs_dilation = (1,) * rank
    dx = lax.conv_general_dilated(
        lhs, _transposed_kernel(kernel, groups).astype(dy.dtype), (1,) * rank, pads_x,
        lhs_dilation=lhs_dilation, rhs_dilation=spec.kernel_dilation,
        dimension_numbers=numbers, feature_group_count=groups, precision=spec.precision)
    pads_k = []
    for n, o, (lo, _), k, s, d in zip(spec.input_shape[1:-1], out, spec.padding,
                                      spec.kernel_shape[:-2], spec.strides,
                                      spec.kernel_dilation):
        pads_k.append((lo, (k - 1) * d + (o - 1) * s + 1 - n - lo))
    xt = jnp.moveaxis(x, (0, x.ndim - 1), (x.ndim - 1, 0))      # (C_in, *spatial, B)
    dyt = jnp.moveaxis(dy, 0, -2)                               # (*out, B, C_out)
    dk = lax.conv_general_dilated(
        xt, dyt.astype(x.dtype), spec.kernel_dilation, pads_k, rhs_dilation=spec.strides,
        dimension_numbers=numbers, batch_group_count=groups, precision=spec.precision,
        preferred_element_type=jnp.float32 if jnp.finfo(x.dtype).bits < 32 else None)
    return dx.astype(x.dtype), jnp.moveaxis(dk, 0, -2)     # (*k, C_in/g, C_out)


_canonical_custom = _with_backward(lambda x, k, spec: xla(x, k, spec), _canonical_grads)


def _canonical_unsupported(spec: ConvSpec) -> str | None:
    if any(d != 1 for d in spec.input_dilation):
        return f"input_dilation={spec.input_dilation}"
    if spec.preferred_element_type is not None:
        return f"preferred_element_type={spec.preferred_element_type}"
    return None


def canonical(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """`xla`'s forward with both gradients written as channels-last forward convs
    (`_canonical_grads`, a custom VJP): the same sums as autodiff's, and as fast inside
    ``lax.scan`` / ``fori_loop`` as outside (training several steps per compiled call, gradient
    accumulation). Inside `forward_mode_ad` it is autodiff's.
    """
    if any(o == 0 for o in spec.output_shape):
        return xla(x, kernel, spec)
    return _canonical_custom(x, kernel, spec)


def _shift_unsupported(spec: ConvSpec) -> str | None:
    if not spec.is_depthwise:
        return (f"not depthwise (feature_group_count={spec.feature_group_count}, "
                f"{spec.in_channels} input channels)")
    if any(d != 1 for d in spec.input_dilation):
        return f"input_dilation={spec.input_dilation}"
    if spec.preferred_element_type is not None:
        return f"preferred_element_type={spec.preferred_element_type}"
    return None


def _zero_pad(x: Array, padding) -> Array:
    if not any(lo or hi for lo, hi in padding):
        return x
    return lax.pad(x, x.dtype.type(0), ((0, 0, 0), *((lo, hi, 0) for lo, hi in padding),
                                        (0, 0, 0)))


def _taps(spec: ConvSpec):
    """``(tap index, offset)`` of each kernel tap: where its view starts in the padded input."""
    for index, tap in enumerate(itertools.product(*(range(k) for k in spec.kernel_shape[:-2]))):
        yield index, tuple(t * d for t, d in zip(tap, spec.kernel_dilation))


def _padded_view(x: Array, offset, spec: ConvSpec) -> Array:
    """One tap's strided view of the already zero-padded input."""
    limit = [o + (n - 1) * s + 1 for o, n, s in zip(offset, spec.output_shape[1:-1],
                                                    spec.strides)]
    return lax.slice(x, (0, *offset, 0), (x.shape[0], *limit, x.shape[-1]),
                     (1, *spec.strides, 1))


def _accumulator(dtype) -> Any:
    """float32 for floats narrower than 32 bits (their products are exact there), the dtype
    itself otherwise (integers included)."""
    if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
        return jnp.float32
    return dtype


def _shift_forward(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    # The padded copy is written once, with the input's producer (say BatchNorm + ReLU) fused
    # in; reading the taps straight from the input would make XLA recompute that producer
    # once per tap.
    x = _zero_pad(x, spec.padding)
    multiplier = spec.out_channels // spec.in_channels
    if multiplier > 1:
        x = jnp.repeat(x, multiplier, axis=-1)
    w = kernel.reshape((-1, *(1,) * (x.ndim - 1), spec.out_channels))
    # bf16 products are exact in f32; summing the taps there and rounding once keeps a 7x7
    # tap sum as accurate as XLA's conv (which also accumulates in f32).
    acc = _accumulator(x.dtype)
    y = None
    for index, offset in _taps(spec):
        term = _padded_view(x, offset, spec).astype(acc) * w[index].astype(acc)
        y = term if y is None else y + term
    return y.astype(x.dtype)


#: Bytes of input per step of the backward's loop over the batch, for a 3x3 kernel (larger
#: kernels take proportionally less): small enough for one step's tap views and gradients to
#: stay in cache (measured on the CPU bench: 28x28x64 images, batch 128: kernel gradient 70 ms
#: as one pass per tap, 15-25 ms in 0.25-1 MB steps; 7x7 on 16x16x128, batch 64: backward
#: 34 ms in 1 MB steps, 16 ms in 0.2 MB steps).
_CHUNK_BYTES = 1 << 20


def _chunk(batch: int, image_bytes: int) -> int:
    """The largest divisor of ``batch`` whose images fit in `_CHUNK_BYTES` (at least 1; the
    whole batch when it is empty)."""
    fit = max(1, _CHUNK_BYTES // max(1, image_bytes))
    return max((d for d in range(1, min(batch, fit) + 1) if batch % d == 0), default=batch)


def _batch_shards(batch: int) -> int:
    """How many equal shards `data_parallel` says the batch is split into (1 when they do not
    divide ``batch``)."""
    shards = _DATA_SHARDS.get()
    return shards if batch and batch % shards == 0 else 1


def _shift_input_grad(dy: Array, kernel: Array, spec: ConvSpec) -> Array | None:
    """The input gradient of a depthwise conv as the same shifted multiply-adds on the output
    gradient (zero-inserted between outputs for strides > 1), with the kernel flipped and the
    padding mirrored so that the result covers exactly the input; ``None`` when that padding
    would be negative (then autodiff's form is used).

    Autodiff's form (each tap's product padded back into place, then summed) checks every
    tap's borders, and with strides every interior gap, at every element; this reads one padded
    copy through plain slices.
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
    dx = _shift_forward(dy, flipped, flip_spec)
    multiplier = channels // spec.in_channels
    if multiplier > 1:
        dx = dx.reshape((*dx.shape[:-1], spec.in_channels, multiplier)).sum(-1)
    return dx


def _shift_grads(x: Array, kernel: Array, dy: Array, spec: ConvSpec) -> tuple[Array, Array]:
    """Input and kernel gradients in one loop over cache-sized chunks of the batch.

    The kernel gradient ``dk[t, c] = sum view_t(x) * dy`` as one pass over the whole batch per
    tap re-reads the input and the output gradient from memory for every tap; and the input
    gradient (the adjoint of the tap views: ``dy * k[t]`` shifted back and summed) reads ``dy``
    once per tap, so XLA fuses ``dy``'s producer into it and recomputes that once per tap. The
    loop's inputs are written once, and each chunk's taps read from cache. Under
    `data_parallel` each step takes a chunk of every shard and the kernel gradient is summed
    per shard until the loop ends, so devices exchange nothing inside the loop.
    """
    acc_dtype = _accumulator(dy.dtype)
    taps = math.prod(spec.kernel_shape[:-2])
    multiplier = spec.out_channels // spec.in_channels
    batch = x.shape[0]
    shards = _batch_shards(batch)

    def tap_sum(product):
        if shards == 1:
            return jnp.sum(product, axis=tuple(range(product.ndim - 1)))
        parts = product.reshape(shards, -1, *product.shape[1:])
        return jnp.sum(parts, axis=tuple(range(1, parts.ndim - 1)))

    def step(dk, xc, dc):
        chunk_spec = dataclasses.replace(spec, input_shape=(xc.shape[0], *spec.input_shape[1:]))
        dxc = _shift_input_grad(dc, kernel, chunk_spec)
        if dxc is None:
            _, input_vjp = jax.vjp(lambda xc: _shift_forward(xc, kernel, chunk_spec), xc)
            (dxc,) = input_vjp(dc)
        xp = _zero_pad(xc, spec.padding)
        xp = jnp.repeat(xp, multiplier, axis=-1) if multiplier > 1 else xp
        wide = dc.astype(acc_dtype)
        sums = jnp.stack([tap_sum(_padded_view(xp, offset, chunk_spec).astype(acc_dtype) * wide)
                          for _, offset in _taps(spec)])
        return dk + sums, dxc

    dk0 = jnp.zeros((taps, spec.out_channels) if shards == 1
                    else (taps, shards, spec.out_channels), acc_dtype)
    # per-chunk work grows with the taps: 3x3 measured best at 1 MiB of input, 7x7 at 1/4 of it
    chunk = _chunk(batch // shards,
                   math.prod(x.shape[1:]) * x.dtype.itemsize * multiplier * taps // 9)
    steps = batch // shards // chunk if chunk else 1
    if steps <= 1:
        dk, dx = step(dk0, x, dy)
    else:
        # step s takes chunk s of every shard, so a batch split over devices stays split
        def split(a):
            a = a.reshape(shards, steps, chunk, *a.shape[1:])
            return jnp.moveaxis(a, 1, 0).reshape(steps, shards * chunk, *a.shape[3:])

        dk, dx = lax.scan(lambda c, pair: step(c, *pair), dk0, (split(x), split(dy)))
        dx = jnp.moveaxis(dx.reshape(steps, shards, chunk, *x.shape[1:]), 0, 1).reshape(x.shape)
    if shards > 1:
        dk = dk.sum(1)
    return dx, dk.reshape(spec.kernel_shape)


def shift(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A depthwise conv as one strided slice and multiply-add per kernel tap.

    ``y[o] = sum_t x[o * s + t * d] * k[t]`` channel by channel: for a 3x3 kernel, nine shifted
    views of the padded input, each scaled by one tap's per-channel weights. A depth multiplier
    ``M`` repeats each input channel ``M`` times first. The backward is written out (a custom
    VJP, `_shift_grads`): one loop over cache-sized chunks of the batch computes the input
    gradient as the same taps on the output gradient with the kernel flipped, and the kernel
    gradient as each tap's summed products. Inside `forward_mode_ad` it is autodiff's.
    """
    return _shift_custom(x, kernel, spec)


_shift_custom = _with_backward(_shift_forward, _shift_grads)


def _dense_unsupported(spec: ConvSpec, what: str) -> str | None:
    """Why a formulation for dense convs without input dilation (``what``) cannot take ``spec``."""
    if spec.feature_group_count != 1:
        return f"feature_group_count={spec.feature_group_count} ({what} are for dense convs)"
    if any(d != 1 for d in spec.input_dilation):
        return f"input_dilation={spec.input_dilation}"
    return None


def _patches_unsupported(spec: ConvSpec) -> str | None:
    return _dense_unsupported(spec, "patches")


def patches(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A dense conv as im2col: every output pixel's input patch laid out along the channel
    axis (one strided slice per tap, concatenated), then the 1x1 `matmul` with the kernel read
    as a ``(taps * C_in, C_out)`` matrix.

    The patch tensor is ``taps`` times the input, so this pays only where the input is thin: a
    3x3 stem on a grey image makes a 9-channel tensor and one small matmul, where XLA's CPU
    convolution (and, above all, its kernel gradient) handles one input channel poorly.
    """
    x = _zero_pad(x, spec.padding)
    views = [_padded_view(x, offset, spec) for _, offset in _taps(spec)]
    p = jnp.concatenate(views, axis=-1) if len(views) > 1 else views[0]
    ones = (1,) * spec.rank
    flat = dataclasses.replace(
        spec, input_shape=p.shape, kernel_shape=(*ones, spec.patch_size, spec.out_channels),
        strides=ones, padding=((0, 0),) * spec.rank, kernel_dilation=ones)
    return matmul(p, kernel.reshape(flat.kernel_shape), flat)


def _split_unsupported(spec: ConvSpec) -> str | None:
    if spec.feature_group_count == 1:
        return "feature_group_count=1 (nothing to split)"
    return None


def split(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A grouped conv as one dense `lax.conv_general_dilated` per group, concatenated.

    XLA's CPU backend runs grouped convolutions, and above all their backward pass, far slower
    than the same number of dense convolutions of the group's size. Each part is computed as
    `_dense_2d` would.
    """
    groups = spec.feature_group_count
    cin, cout = spec.in_channels // groups, spec.out_channels // groups
    dense = dataclasses.replace(spec, input_shape=(*spec.input_shape[:-1], cin),
                                kernel_shape=(*spec.kernel_shape[:-1], cout),
                                feature_group_count=1)
    parts = [_dense_2d(x[..., g * cin:(g + 1) * cin], kernel[..., g * cout:(g + 1) * cout],
                       dense) for g in range(groups)]
    return jnp.concatenate(parts, axis=-1)


def _depth_taps_unsupported(spec: ConvSpec) -> str | None:
    if spec.rank != 3:
        return f"the conv is {spec.rank}-D; depth taps are for 3-D convs"
    return _dense_unsupported(spec, "depth taps")


def _row_taps_unsupported(spec: ConvSpec) -> str | None:
    if spec.rank != 2:
        return f"the conv is {spec.rank}-D; row taps are for 2-D convs"
    return _dense_unsupported(spec, "row taps")


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
    x = _zero_pad(x, ((lo, hi), *((0, 0),) * (spec.rank - 1)))
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
    y = (xla if _canonical_unsupported(lower) else canonical)(p, w, lower)
    return y.reshape(spec.input_shape[0], out_size, *y.shape[1:])


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


#: Forward-convolution formulations, by ``impl=`` name.
CONV: dict[str, Formulation] = {
    f.name: f for f in (
        Formulation("xla", xla, lambda spec: None,
                    "jax.lax.conv_general_dilated, the reference"),
        Formulation("canonical", canonical, _canonical_unsupported,
                    "lax.conv_general_dilated, gradients as channels-last forward convs"),
        Formulation("matmul", matmul, _matmul_unsupported,
                    "1x..x1 kernel as subsample + dot_general over channels"),
        Formulation("shift", shift, _shift_unsupported,
                    "depthwise conv as one shifted multiply-add per kernel tap"),
        Formulation("split", split, _split_unsupported,
                    "grouped conv as one dense conv per group, concatenated"),
        Formulation("patches", patches, _patches_unsupported,
                    "dense conv as im2col patches + one matmul"),
        Formulation("depth_taps", depth_taps, _depth_taps_unsupported,
                    "3-D conv as one 2-D conv over the depth taps laid along the channels"),
        Formulation("row_taps", row_taps, _row_taps_unsupported,
                    "2-D conv as one 1-D conv over the row taps laid along the channels"),
    )
}
