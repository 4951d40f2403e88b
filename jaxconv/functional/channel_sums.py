"""BatchNorm's per-channel reductions as primitives with a native CPU lowering.

On XLA:CPU the channel reductions of a BatchNorm (two in its forward, two in its backward) are
a large part of a small net's training step: removing BatchNorm's statistics altogether
lifted the ResNet bench net's step by 15% (`experiments/results/onednn_next_levers_avx512.md`).
The native extension sums a channels-last tensor's rows in one pass (`native/channel_sums.cc`).
Two primitives carry it, so that every transform still composes:

- ``channel_sums(a, b, shift) = (sum(a), sum(a * (b - shift)))`` over every axis but the last:
  BatchNorm's statistics are ``channel_sums(x, x, 0)``, and its backward's reductions
  ``channel_sums(dy, x, mean)``. Its derivative is written in ``lax``.
- ``expand(p, q, x, mean, inv) = p + (x - mean) * inv * q`` with ``p`` and ``q`` per channel:
  the part of BatchNorm's tangent map that broadcasts per-channel values. It is linear in
  ``(p, q)`` and its transpose is ``channel_sums(ct, x, mean)`` (scaled by ``inv``), so reverse
  mode reduces through the native handler while forward mode evaluates ``lax`` code.

On the CPU, where the extension is loaded, ``channel_sums`` lowers to the handler (each device
summing its own part of a batch split over devices, the parts added once); everywhere else,
and in `jax.export` artefacts, to ``lax`` reductions. ``vmap`` folds a mapped axis into the
channels. Whether BatchNorm uses these at all is the policy's choice
(`jaxconv.functional.policy.native_batch_norm`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.experimental.custom_partitioning import custom_partitioning
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir
from jax.sharding import NamedSharding, PartitionSpec

from jaxconv.functional.formulations.onednn import (
    _batch_axes,
    _partitioned_program,
    fold_mapped,
    unfold_mapped,
)
from jaxconv.functional.formulations.primitive import _vary_alike
from jaxconv.tuning import native
from jaxconv.typing import Array

_sums = Primitive("jaxconv_channel_sums")
_sums.multiple_results = True
_expand = Primitive("jaxconv_bn_expand")

_TARGET = "jaxconv_channel_sums"


def _per_channel(v: Array, ndim: int) -> Array:
    return v.reshape((1,) * (ndim - 1) + v.shape)


def _lax_sums(a: Array, b: Array, shift: Array) -> list[Array]:
    axes = tuple(range(a.ndim - 1))
    return [a.sum(axes), (a * (b - _per_channel(shift, a.ndim))).sum(axes)]


def _lax_expand(p: Array, q: Array, x: Array, mean: Array, inv: Array) -> Array:
    ndim = x.ndim
    return _per_channel(p, ndim) + (x - _per_channel(mean, ndim)) * _per_channel(inv * q, ndim)


def channel_sums(a: Array, b: Array, shift: Array) -> tuple[Array, Array]:
    """``(sum(a), sum(a * (b - shift)))`` over every axis of ``a`` and ``b`` (one shape
    ``(..., C)``) but the last; ``shift`` is ``(C,)``. float32."""
    a, b, shift = _vary_alike(a, b, shift)
    return tuple(_sums.bind(a, b, shift))


def expand(p: Array, q: Array, x: Array, mean: Array, inv: Array) -> Array:
    """``p + (x - mean) * inv * q``, every argument but ``x`` one value per channel."""
    p, q, x, mean, inv = _vary_alike(p, q, x, mean, inv)
    return _expand.bind(p, q, x, mean, inv)


# evaluation, shapes and lowering
def _sums_aval(a, b, shift):
    """Two ``(C,)`` values, whole on every device of ``a``'s mesh (a sum over the rows is split
    along none of its axes, whatever split the rows)."""
    sharding = a.sharding.update(spec=PartitionSpec())
    out = a.update(shape=a.shape[-1:], sharding=sharding, weak_type=False)
    return [out, out]


_sums.def_abstract_eval(_sums_aval)
_expand.def_abstract_eval(lambda p, q, x, mean, inv: x.update(weak_type=False))
# outside any trace: the primitive alone, compiled (so it lowers as it does inside a program)
_sums.def_impl(jax.jit(lambda a, b, shift: _sums.bind(a, b, shift)))
_expand.def_impl(jax.jit(lambda p, q, x, mean, inv: _expand.bind(p, q, x, mean, inv)))


def _native(a: Array, b: Array, shift: Array) -> list[Array]:
    out = jax.ShapeDtypeStruct(a.shape[-1:], a.dtype)
    return list(jax.ffi.ffi_call(_TARGET, (out, out))(a, b, shift))


@functools.cache
def _partitioned(rank: int):
    """The handler for a program whose batch may be split over devices: each device sums its
    own rows, then the parts are added across the devices once; anything else split is
    gathered first."""

    @custom_partitioning
    def call(a, b, shift):
        return tuple(_native(a, b, shift))

    def partition(mesh, arg_shapes, result_shape):
        axes = _batch_axes(arg_shapes[0].sharding)

        def lower(a, b, shift):
            s1, s2 = _native(a, b, shift)
            if axes is None:
                return s1, s2
            return jax.lax.psum(s1, axes), jax.lax.psum(s2, axes)

        rows = NamedSharding(mesh, PartitionSpec(axes))
        whole = NamedSharding(mesh, PartitionSpec())
        return mesh, lower, (whole, whole), (rows, rows, whole)

    inner = " ".join(f"s{i}" for i in range(rank - 2))
    rule = f"b {inner} c, b {inner} c, c -> c, c".replace("  ", " ")
    call.def_partition(
        partition=partition, sharding_rule=rule,
        infer_sharding_from_operands=lambda mesh, arg_shapes, result_shape: (
            NamedSharding(mesh, PartitionSpec()),) * 2,
        reduction_factors=("b",),
        need_replication_factors=(*(f"s{i}" for i in range(rank - 2)), "c"))
    return call


_lax_lowering = mlir.lower_fun(_lax_sums, multiple_results=True)
_native_lowering = mlir.lower_fun(_native, multiple_results=True)
_partitioned_lowering = mlir.lower_fun(
    lambda a, b, shift: list(_partitioned(a.ndim)(a, b, shift)), multiple_results=True)


def _cpu_lowering(ctx, a, b, shift):
    """The handler, except in `jax.export` artefacts (which must run without the extension)
    and where it is not loaded."""
    if ctx.module_context.lowering_parameters.for_export or not native.available():
        return _lax_lowering(ctx, a, b, shift)
    if _partitioned_program(ctx) and len(ctx.avals_in[0].shape) >= 2:
        return _partitioned_lowering(ctx, a, b, shift)
    return _native_lowering(ctx, a, b, shift)


# the partitioned lowering needs the program's devices (see the onednn formulation); where this
# JAX lacks that list, the handler still runs, on a gathered batch
try:
    from jax._src import dispatch

    dispatch.prim_requires_devices_during_lowering.add(_sums)
except (ImportError, AttributeError):
    pass

mlir.register_lowering(_sums, _lax_lowering)
mlir.register_lowering(_sums, _cpu_lowering, platform="cpu")
mlir.register_lowering(_expand, mlir.lower_fun(_lax_expand, multiple_results=False))


def _zero(t) -> bool:
    return type(t) is ad.Zero


def _tangent_sum(terms, like):
    """The sum of the terms that are not symbolic zeros (a zero tangent when all are)."""
    terms = [t for t in terms if t is not None]
    if not terms:
        return ad.Zero(jax.typeof(like).to_tangent_aval())
    return functools.reduce(lambda a, b: a + b, terms)


# forward mode: written in lax (the native handler only ever sees primal values)
def _sums_jvp(primals, tangents):
    a, b, shift = primals
    da, db, dshift = tangents
    out = _sums.bind(a, b, shift)
    axes, ndim = tuple(range(a.ndim - 1)), a.ndim
    d1 = None if _zero(da) else da.sum(axes)
    d2 = [None if _zero(da) else (da * (b - _per_channel(shift, ndim))).sum(axes),
          None if _zero(db) else (a * db).sum(axes),
          None if _zero(dshift) else -a.sum(axes) * dshift]
    return out, [_tangent_sum([d1], out[0]), _tangent_sum(d2, out[1])]


def _expand_jvp(primals, tangents):
    p, q, x, mean, inv = primals
    dp, dq, dx, dmean, dinv = tangents
    ndim = x.ndim
    y = _expand.bind(p, q, x, mean, inv)
    # linear in (p, q): the same map of their tangents, plus the terms of x, mean and inv
    linear = None
    if not (_zero(dp) and _zero(dq)):
        linear = expand(jnp.zeros_like(p) if _zero(dp) else dp,
                        jnp.zeros_like(q) if _zero(dq) else dq, x, mean, inv)
    terms = [linear,
             None if _zero(dx) else dx * _per_channel(inv * q, ndim),
             None if _zero(dmean) else jnp.broadcast_to(
                 -_per_channel(dmean * inv * q, ndim), x.shape),
             None if _zero(dinv) else (x - _per_channel(mean, ndim)) * _per_channel(dinv * q,
                                                                                     ndim)]
    return y, _tangent_sum(terms, y)


ad.primitive_jvps[_sums] = _sums_jvp
ad.primitive_jvps[_expand] = _expand_jvp


# reverse mode: expand's transpose is the native reduction
def _expand_transpose(ct, p, q, x, mean, inv):
    if any(ad.is_undefined_primal(v) for v in (x, mean, inv)):
        raise ValueError("jaxconv_bn_expand is linear in its first two operands only")
    if type(ct) is ad.Zero:
        return [ad.Zero(p.aval) if ad.is_undefined_primal(p) else None,
                ad.Zero(q.aval) if ad.is_undefined_primal(q) else None, None, None, None]
    first, second = channel_sums(ct, x, mean)
    return [first if ad.is_undefined_primal(p) else None,
            second * inv if ad.is_undefined_primal(q) else None, None, None, None]


ad.primitive_transposes[_expand] = _expand_transpose


# vmap: a mapped axis joins the channels
def _fold(v: Array, dim, size: int) -> Array:
    """``v`` with its mapped axis (broadcast where unmapped) folded into its last axis,
    mapped index outer: per-channel values ``(size, C) -> (size * C,)``, tensors
    ``(size, ..., C) -> (..., size * C)``."""
    return fold_mapped(batching.bdim_at_front(v, dim, size))


def _sums_batch(args, dims):
    size = next(v.shape[d] for v, d in zip(args, dims) if d is not None)
    folded = [_fold(v, d, size) for v, d in zip(args, dims)]
    return [unfold_mapped(s, size) for s in channel_sums(*folded)], [0, 0]


def _expand_batch(args, dims):
    size = next(v.shape[d] for v, d in zip(args, dims) if d is not None)
    p, q, x, mean, inv = (_fold(v, d, size) for v, d in zip(args, dims))
    return unfold_mapped(expand(p, q, x, mean, inv), size), 0


batching.primitive_batchers[_sums] = _sums_batch
batching.primitive_batchers[_expand] = _expand_batch
