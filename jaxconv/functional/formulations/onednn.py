"""``onednn``: the native CPU formulation, oneDNN's convolution kernels through XLA's FFI.

Present only where the extension was built (`jaxconv.tuning.native`); elsewhere
``impl="onednn"`` refuses with the reason. float32, and bfloat16 where the CPU has native bf16
arithmetic (`jaxconv.tuning.machine.native_bf16`; refused elsewhere, and float16 everywhere:
oneDNN would emulate them, or not run them at all), 1-3 spatial dims, strides, kernel dilation,
groups (depthwise included) and explicit, asymmetric zero padding, in jaxconv's layout
(channels-last input, HWIO kernel), which oneDNN reads in place (the kernel is reordered to
oneDNN's blocked layout where its primitive runs on one).

A conv and its two gradients are three bilinear maps of two operands each, every one the
transpose of the others with respect to one operand:

- ``forward(x, k) = y``;
- ``backward_data(dy, k) = dx``, the transpose of ``forward`` in ``x``;
- ``backward_weights(x, dy) = dk``, the transpose of ``forward`` in ``k``.

One primitive, ``jaxconv_onednn``, carries all three (``op=``), so derivatives of any order,
``vmap`` and forward mode compose as they do for `lax.conv_general_dilated`: its JVP is the
same map of the tangents, and its transposes are the other two maps. On the CPU each lowers to
its FFI handler, partitioned so that a program whose batch is split over devices runs each
device's part where it is (`_partitioned`); on every other platform, and in `jax.export`
artefacts (which must not depend on the extension), to the ``lax`` code of
`jaxconv.functional.formulations.lax_conv`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.experimental.custom_partitioning import custom_partitioning
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jax.sharding import NamedSharding, PartitionSpec

from jaxconv.functional.formulations.channel_matmul import matmul, unsupported_matmul
from jaxconv.functional.formulations.dense import (
    depth_taps,
    split,
    unsupported_depth_taps,
    unsupported_split,
)
from jaxconv.functional.formulations.depthwise_taps import shift, unsupported_shift
from jaxconv.functional.formulations.lax_conv import (
    _input_grad,
    _kernel_grad,
    canonical,
    unsupported_canonical,
    xla,
)
from jaxconv.functional.formulations.primitive import _vary_alike
from jaxconv.functional.formulations.spec import ConvSpec, is_empty, unsupported_lax_extras
from jaxconv.tuning import machine, native
from jaxconv.typing import Array

FORWARD, BACKWARD_DATA, BACKWARD_WEIGHTS = "forward", "backward_data", "backward_weights"

#: The FFI target of each map and dtype, registered by `jaxconv.tuning.native`.
_TARGET = {(op, jnp.dtype(dtype)): f"jaxconv_onednn_conv_{op}{suffix}"
           for op in (FORWARD, BACKWARD_DATA, BACKWARD_WEIGHTS)
           for dtype, suffix in ((jnp.float32, ""), (jnp.bfloat16, "_bf16"))}

#: Each map as ``lax`` code: the lowering off the CPU and under `jax.export`.
_LAX = {FORWARD: xla,
        BACKWARD_DATA: _input_grad,
        BACKWARD_WEIGHTS: _kernel_grad}

_conv = Primitive("jaxconv_onednn")


def _bind(op: str, a: Array, b: Array, spec: ConvSpec) -> Array:
    """One of the three maps; its first operand carries the batch in every one."""
    a, b = _vary_alike(a, b)
    return _conv.bind(a, b, op=op, spec=spec.with_batch(a.shape[0]))


def _out_aval(a, b, *, op: str, spec: ConvSpec):
    """The map's output type: the first operand's (sharding and `jax.shard_map`'s manual axes
    included, which `_bind` gave both operands) with the output's shape."""
    return a.update(shape=_out_shape(op, a.shape[0], spec), weak_type=False)


def _out_shape(op: str, batch: int, spec: ConvSpec) -> tuple[int, ...]:
    """The map's output shape when its first operand has ``batch`` examples."""
    return tuple({FORWARD: (batch, *spec.output_shape[1:]),
                  BACKWARD_DATA: (batch, *spec.input_shape[1:]),
                  BACKWARD_WEIGHTS: spec.kernel_shape}[op])


def _native(op: str, a: Array, b: Array, spec: ConvSpec) -> Array:
    """The FFI call of one map."""
    out = _out_aval(jax.typeof(a), b, op=op, spec=spec)
    return jax.ffi.ffi_call(_TARGET[op, jnp.dtype(out.dtype)],
                            jax.ShapeDtypeStruct(out.shape, out.dtype))(
        a, b, strides=np.asarray(spec.strides, np.int64),
        dilation=np.asarray(spec.kernel_dilation, np.int64),
        pad_lo=np.asarray([lo for lo, _ in spec.padding], np.int64),
        pad_hi=np.asarray([hi for _, hi in spec.padding], np.int64),
        groups=np.int64(spec.feature_group_count))


def _batch_axes(sharding) -> str | tuple[str, ...] | None:
    """The mesh axes the batch (the first dim) is split over by ``sharding``, if any."""
    spec = getattr(sharding, "spec", None)
    return spec[0] if spec else None


def _sharding_rule(op: str, rank: int) -> str:
    """The map's Shardy rule: the batch ``b`` is the one factor it may be split along (a
    reduction in ``backward_weights``)."""
    inp, out, ker = (" ".join(f"{n}{i}" for i in range(rank)) for n in "sok")
    return {FORWARD: f"b {inp} c, {ker} ci co -> b {out} co",
            BACKWARD_DATA: f"b {out} co, {ker} ci co -> b {inp} c",
            BACKWARD_WEIGHTS: f"b {inp} c, b {out} co -> {ker} ci co"}[op]


@functools.lru_cache(maxsize=256)
def _partitioned(op: str, spec: ConvSpec) -> Callable[[Array, Array], Array]:
    """The FFI call of one map for a program whose batch may be split over devices: each
    device runs oneDNN on its own part of the batch, nothing gathered; the kernel gradient's
    parts are summed across the devices once. Anything else split is gathered first."""
    reduces = op == BACKWARD_WEIGHTS

    @custom_partitioning
    def call(a, b):
        return _native(op, a, b, spec)

    def out_sharding(mesh, axes):
        return NamedSharding(mesh, PartitionSpec() if reduces else PartitionSpec(axes))

    def partition(mesh, arg_shapes, result_shape):
        axes = _batch_axes(arg_shapes[0].sharding)

        def lower(a, b):
            y = _native(op, a, b, spec.with_batch(a.shape[0]))
            return lax.psum(y, axes) if reduces and axes is not None else y

        operands = (NamedSharding(mesh, PartitionSpec(axes)),
                    NamedSharding(mesh, PartitionSpec(axes) if reduces else PartitionSpec()))
        return mesh, lower, out_sharding(mesh, axes), operands

    rule = _sharding_rule(op, spec.rank)
    factors = dict.fromkeys(f for f in rule.replace(",", " ").replace("->", " ").split())
    call.def_partition(
        partition=partition, sharding_rule=rule,
        infer_sharding_from_operands=lambda mesh, arg_shapes, result_shape: out_sharding(
            mesh, _batch_axes(arg_shapes[0].sharding)),
        reduction_factors=("b",) if reduces else (),
        need_replication_factors=tuple(f for f in factors if f != "b"))
    return call


def _evaluate(a: Array, b: Array, op: str, spec: ConvSpec, on_cpu: bool) -> Array:
    """One map outside any trace, without binding the primitive again (so it also runs under
    ``jax.disable_jit``): the FFI call on the CPU, ``lax`` elsewhere."""
    if on_cpu and native.available():
        return _native(op, a, b, spec)
    return _LAX[op](a, b, spec)


_jitted = jax.jit(_evaluate, static_argnums=(2, 3, 4))


def _impl(a, b, *, op: str, spec: ConvSpec):
    devices = a.devices() if hasattr(a, "devices") else {jax.devices()[0]}
    return _jitted(a, b, op, spec, all(d.platform == "cpu" for d in devices))


_conv.def_abstract_eval(_out_aval)
_conv.def_impl(_impl)
# the partitioned lowering needs the program's devices; JAX gives them to lowerings of the
# primitives it knows need them (callbacks, custom_partitioning), and keeps the list in its
# internals: a JAX without that list leaves the formulation unsupported, jaxconv importable
try:
    from jax._src import dispatch

    dispatch.prim_requires_devices_during_lowering.add(_conv)
    _JAX_INTERNALS = True
except (ImportError, AttributeError):
    _JAX_INTERNALS = False

def _cpu_forward(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """The forward conv as lax code fit for XLA's CPU backend, for CPU artefacts that must
    run without the extension: the formulation that the lax-only policy rows take for the
    class (one shifted multiply-add per tap for depthwise convs, one dense conv per group,
    one dot over the channels for a 1x1, the depth taps of a 3-D conv), since XLA's own
    grouped and 3-D convs are slow there."""
    for compute, unsupported in ((matmul, unsupported_matmul) if spec.is_pointwise else
                                 (shift, unsupported_shift) if spec.is_depthwise else
                                 (split, unsupported_split) if spec.feature_group_count > 1 else
                                 (depth_taps, unsupported_depth_taps) if spec.rank == 3 else
                                 (canonical, unsupported_canonical),):
        if unsupported(spec) is None:
            return compute(x, kernel, spec)
    return xla(x, kernel, spec)


_lax_lowering = mlir.lower_fun(lambda a, b, *, op, spec: _LAX[op](a, b, spec),
                               multiple_results=False)
_cpu_lax_lowering = mlir.lower_fun(
    lambda a, b, *, op, spec: (_cpu_forward if op == FORWARD else _LAX[op])(a, b, spec),
    multiple_results=False)
_native_lowering = mlir.lower_fun(lambda a, b, *, op, spec: _native(op, a, b, spec),
                                  multiple_results=False)
_partitioned_lowering = mlir.lower_fun(
    lambda a, b, *, op, spec: _partitioned(op, spec)(a, b), multiple_results=False)


def _partitioned_program(ctx) -> bool:
    """Whether the program being lowered runs on several known devices that XLA partitions
    (inside `jax.shard_map`, or on one device, each call already sees its own part)."""
    context = ctx.module_context.axis_context
    return (getattr(context, "num_devices", 1) > 1
            and getattr(context, "device_assignment", None) is not None)


def _cpu_lowering(ctx, a, b, *, op, spec):
    """The FFI handler, except in `jax.export` artefacts: those must run without the
    extension, so they hold lax code (`_cpu_forward` for the forward conv)."""
    if ctx.module_context.lowering_parameters.for_export or not native.available():
        return _cpu_lax_lowering(ctx, a, b, op=op, spec=spec)
    if _partitioned_program(ctx):
        return _partitioned_lowering(ctx, a, b, op=op, spec=spec)
    return _native_lowering(ctx, a, b, op=op, spec=spec)


mlir.register_lowering(_conv, _lax_lowering)
mlir.register_lowering(_conv, _cpu_lowering, platform="cpu")


def _is_zero(t) -> bool:
    return type(t) is ad.Zero


def _jvp(primals, tangents, *, op, spec):
    """Bilinear: the same map with one operand's tangent in place of the operand, summed."""
    (a, b), (da, db) = primals, tangents
    y = _conv.bind(a, b, op=op, spec=spec)
    terms = ([] if _is_zero(da) else [_bind(op, da, b, spec)]) + \
            ([] if _is_zero(db) else [_bind(op, a, db, spec)])
    if not terms:
        return y, ad.Zero(jax.typeof(y).to_tangent_aval())
    return y, terms[0] if len(terms) == 1 else terms[0] + terms[1]


#: ``(op, operand) -> (ct, other operand, spec) -> cotangent of the operand``: each map's
#: transposes are the other two maps (``a`` is the first operand, ``b`` the second).
_TRANSPOSE = {
    (FORWARD, "a"): lambda ct, k, spec: _bind(BACKWARD_DATA, ct, k, spec),
    (FORWARD, "b"): lambda ct, x, spec: _bind(BACKWARD_WEIGHTS, x, ct, spec),
    (BACKWARD_DATA, "a"): lambda ct, k, spec: _bind(FORWARD, ct, k, spec),
    (BACKWARD_DATA, "b"): lambda ct, dy, spec: _bind(BACKWARD_WEIGHTS, ct, dy, spec),
    (BACKWARD_WEIGHTS, "a"): lambda ct, dy, spec: _bind(BACKWARD_DATA, dy, ct, spec),
    (BACKWARD_WEIGHTS, "b"): lambda ct, x, spec: _bind(FORWARD, x, ct, spec),
}


def _transpose(ct, a, b, *, op, spec):
    wants_a, wants_b = ad.is_undefined_primal(a), ad.is_undefined_primal(b)
    if wants_a and wants_b:
        raise ValueError("jaxconv_onednn: the map is bilinear, not linear in both operands")
    if _is_zero(ct):
        return [ad.Zero(a.aval) if wants_a else None, ad.Zero(b.aval) if wants_b else None]
    if wants_a:
        return [_TRANSPOSE[op, "a"](ct, b, spec), None]
    return [None, _TRANSPOSE[op, "b"](ct, a, spec)]


def _grouped(spec: ConvSpec, size: int) -> ConvSpec:
    """``size`` independent convs of ``spec`` as one grouped conv: each conv's channels a
    contiguous block of ``size`` times as many, its groups among ``size`` times as many."""
    *window, group_in, out = spec.kernel_shape
    return dataclasses.replace(
        spec, input_shape=(*spec.input_shape[:-1], size * spec.in_channels),
        kernel_shape=(*window, group_in, size * out),
        feature_group_count=size * spec.feature_group_count)


def fold_mapped(a: Array) -> Array:
    """A mapped axis in front moved into the last (channel) axis, mapped index outer:
    ``(size, ..., C) -> (..., size * C)``, and ``(size, C) -> (size * C,)``."""
    moved = jnp.moveaxis(a, 0, -2)
    return moved.reshape((*moved.shape[:-2], moved.shape[-2] * moved.shape[-1]))


def unfold_mapped(a: Array, size: int) -> Array:
    """The inverse of `fold_mapped`: the last axis's ``size`` blocks as a mapped axis in front."""
    return jnp.moveaxis(a.reshape((*a.shape[:-1], size, a.shape[-1] // size)), -2, 0)


def _batch(args, dims, *, op, spec):
    """vmap. A mapped first operand joins the batch when the second is unmapped and the map's
    output carries the batch (one call on a larger batch). Where both operands are mapped (a
    vmapped conv of mapped kernels; per-example kernel gradients), the mapped convs become the
    groups of one grouped conv, every operand's channels folded, so they stay one oneDNN call.
    Anything else (one operand mapped that the first two cases do not cover: an unmapped input
    shared by mapped kernels) is mapped over with ``lax.map``, which copies nothing."""
    (a, b), (da, db) = args, dims
    size = a.shape[da] if da is not None else b.shape[db]
    if db is None and op != BACKWARD_WEIGHTS:
        moved = jnp.moveaxis(a, da, 0)
        batch = moved.shape[1]
        y = _bind(op, moved.reshape((size * batch, *moved.shape[2:])), b, spec)
        return y.reshape((size, batch, *y.shape[1:])), 0
    if da is None:      # the unmapped operand is closed over, not broadcast
        return lax.map(lambda m: _bind(op, a, m, spec), batching.bdim_at_front(b, db, size)), 0
    if db is None:
        return lax.map(lambda m: _bind(op, m, b, spec), batching.bdim_at_front(a, da, size)), 0
    a, b = batching.bdim_at_front(a, da, size), batching.bdim_at_front(b, db, size)
    if size == 0:
        return lax.map(lambda pair: _bind(op, pair[0], pair[1], spec), (a, b)), 0
    return unfold_mapped(_bind(op, fold_mapped(a), fold_mapped(b), _grouped(spec, size)), size), 0


ad.primitive_jvps[_conv] = _jvp
ad.primitive_transposes[_conv] = _transpose
batching.primitive_batchers[_conv] = _batch


def unsupported_onednn(spec: ConvSpec) -> str | None:
    """Why ``onednn`` cannot express ``spec`` (or run here), or ``None``."""
    if not native.available():
        return native.reason()
    if not _JAX_INTERNALS:
        return (f"jax {jax.__version__} lacks the lowering internals the onednn formulation "
                "uses (jax._src.dispatch.prim_requires_devices_during_lowering)")
    if not 1 <= spec.rank <= 3:
        return f"a {spec.rank}-D conv (oneDNN convolves 1 to 3 spatial dims)"
    extras = unsupported_lax_extras(spec)
    if extras:
        return extras
    if any(lo < 0 or hi < 0 for lo, hi in spec.padding):
        return f"padding={spec.padding} (negative padding crops; oneDNN pads only)"
    return None


def unsupported_dtype(dtype) -> str | None:
    """Why ``onednn`` cannot compute arrays of ``dtype`` on this CPU, or ``None``."""
    dtype = jnp.dtype(dtype)
    if dtype == jnp.float32:
        return None
    if dtype == jnp.bfloat16:
        if machine.native_bf16():
            return None
        return (f"dtype bfloat16 needs a CPU with native bf16 arithmetic "
                f"({' or '.join(sorted(machine.NATIVE_BF16_FLAGS))}), which this one "
                f"({machine.model()}) lacks; oneDNN would emulate it")
    return (f"dtype {dtype.name} (oneDNN's kernels here take float32, and bfloat16 on a CPU "
            "with native bf16 arithmetic)")


def onednn(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """oneDNN's convolution on the CPU, both gradients oneDNN's backward primitives.

    float32 or bfloat16 operands, both of one dtype. bfloat16 runs oneDNN's bf16 kernels (on
    CPUs with native bf16 only): products summed in float32 and each result rounded to
    bfloat16 once, as XLA's CPU backend computes a bfloat16 conv.

    Raises:
      TypeError: ``x`` and ``kernel`` differ in dtype (`jaxconv.functional.conv` refuses that
        for every formulation).
      ValueError: the dtype is not one oneDNN computes natively here (float16, float64,
        integers; bfloat16 on a CPU without native bf16).
    """
    if x.dtype != kernel.dtype:
        raise TypeError(f"impl='onednn': dtypes differ (input {jnp.dtype(x.dtype).name}, "
                        f"kernel {jnp.dtype(kernel.dtype).name}); cast them to one dtype first")
    why = unsupported_dtype(x.dtype)
    if why is not None:
        raise ValueError(f"impl='onednn' cannot compute this conv: {why}; impl='xla' (or "
                         "'auto') computes it")
    if is_empty(spec):
        return xla(x, kernel, spec)
    return _bind(FORWARD, x, kernel, spec)
