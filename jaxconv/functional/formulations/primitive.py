"""A formulation with a backward pass of its own, as a JAX primitive every transform composes
with.

A convolution is bilinear: linear in the input for a fixed kernel and in the kernel for a fixed
input. JAX's own ``conv_general_dilated_p`` uses that (``ad.defbilinear``): its forward-mode
derivative is the conv itself on the tangents, and reverse mode is the transpose of that linear
map, one rule per operand. `bilinear_primitive` does the same for any formulation, with the
formulation's fast backward as the transpose rules, so ``grad``, ``jvp``, ``jacfwd``,
``linearize``, ``hessian`` and ``vmap`` all work by default, in any order.

Two primitives per formulation:

- ``jaxconv_<name>(x, k)``: the conv. Its tangent is the same primitive on ``(dx, k)`` or
  ``(x, dk)`` when only one operand varies, and the pair primitive below when both do.
- ``jaxconv_<name>_pair(dx, dk, x, k) = conv(dx, k) + conv(x, dk)``: linear in ``(dx, dk)``
  together, so its transpose is the formulation's backward for both operands in one call
  (a backward that shares work between the two gradients keeps sharing it).

Both lower through `jax.interpreters.mlir.lower_fun` of plain ``lax`` code, so they compile for
every backend and export for every platform; vmap folds a mapped input into the conv's batch
and maps over anything else with ``lax.map``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

from jaxconv.functional.formulations.spec import ConvSpec
from jaxconv.typing import Array


@dataclasses.dataclass(frozen=True)
class Backward:
    """A formulation's backward pass, piece by piece.

    Attributes:
      input_grad: ``(dy, kernel, spec) -> dx``.
      kernel_grad: ``(x, dy, spec) -> dk``.
      both: ``(x, kernel, dy, spec) -> (dx, dk)`` when computing the two together saves work;
        by default the two above.
    """

    input_grad: Callable[[Array, Array, ConvSpec], Array]
    kernel_grad: Callable[[Array, Array, ConvSpec], Array]
    both: Callable[[Array, Array, Array, ConvSpec], tuple[Array, Array]] | None = None

    def grads(self, x: Array, kernel: Array, dy: Array, spec: ConvSpec) -> tuple[Array, Array]:
        if self.both is not None:
            return self.both(x, kernel, dy, spec)
        return self.input_grad(dy, kernel, spec), self.kernel_grad(x, dy, spec)


def _out_aval(x, spec: ConvSpec):
    """The conv's output type: the input's, batch, sharding and manual axes included, with the
    output's spatial shape, channels and dtype (``bind`` gave both operands the same manual
    axes)."""
    dtype = spec.preferred_element_type or x.dtype
    return x.update(shape=(x.shape[0], *spec.output_shape[1:]), dtype=jax.numpy.dtype(dtype),
                    weak_type=False)


def _varying(a) -> frozenset:
    """The manual mesh axes ``a`` varies over inside `jax.shard_map` (none outside)."""
    kind = getattr(jax.typeof(a), "manual_axis_type", None)
    return frozenset(kind.varying) if kind is not None else frozenset()


def _vary_alike(*operands):
    """The operands, each made to vary over every manual axis any of them varies over (as
    JAX's own binary primitives require inside `jax.shard_map`); the transpose of that cast
    sums a kernel's gradient over the devices."""
    axes = frozenset().union(*map(_varying, operands))
    return tuple(a if _varying(a) == axes else
                 lax.pcast(a, tuple(sorted(axes - _varying(a))), to="varying")
                 for a in operands)


def _is_zero(t) -> bool:
    return type(t) is ad.Zero


def _at_front(x, dim, size):
    return batching.bdim_at_front(x, dim, size)


def bilinear_primitive(name: str, forward: Callable[[Array, Array, ConvSpec], Array],
                       backward: Backward) -> Callable[[Array, Array, ConvSpec], Array]:
    """``(x, kernel, spec) -> y``: ``forward`` as a bilinear primitive whose transposes are
    ``backward``.

    ``forward`` is ``lax`` code of ``(x, kernel, spec)``, linear in each of ``x`` and
    ``kernel``; it is how the primitive lowers. Gradients are cast to their operand's dtype.
    """
    conv = Primitive(f"jaxconv_{name}")
    pair = Primitive(f"jaxconv_{name}_pair")

    def bind(x, kernel, spec):
        x, kernel = _vary_alike(x, kernel)
        return conv.bind(x, kernel, spec=spec.with_batch(x.shape[0]))

    def pair_forward(dx, dk, x, kernel, spec):
        return forward(dx, kernel, spec) + forward(x, dk, spec)

    # evaluation, shapes and lowering
    conv.def_abstract_eval(lambda x, kernel, *, spec: _out_aval(x, spec))
    pair.def_abstract_eval(lambda dx, dk, x, kernel, *, spec: _out_aval(x, spec))
    # outside any trace: one compiled call (the forward itself under ``jax.disable_jit``)
    jitted = jax.jit(forward, static_argnums=2)
    conv.def_impl(lambda x, kernel, *, spec: jitted(x, kernel, spec))
    jitted_pair = jax.jit(pair_forward, static_argnums=4)
    pair.def_impl(lambda dx, dk, x, kernel, *, spec: jitted_pair(dx, dk, x, kernel, spec))
    mlir.register_lowering(conv, mlir.lower_fun(
        lambda x, kernel, *, spec: forward(x, kernel, spec), multiple_results=False))
    mlir.register_lowering(pair, mlir.lower_fun(
        lambda dx, dk, x, kernel, *, spec: pair_forward(dx, dk, x, kernel, spec),
        multiple_results=False))

    # forward mode: the conv of the tangents
    def conv_jvp(primals, tangents, *, spec):
        (x, kernel), (dx, dk) = primals, tangents
        y = conv.bind(x, kernel, spec=spec)
        if _is_zero(dx) and _is_zero(dk):
            return y, ad.Zero(jax.core.get_aval(y).to_tangent_aval())
        if _is_zero(dk):
            return y, conv.bind(dx, kernel, spec=spec)
        if _is_zero(dx):
            return y, conv.bind(x, dk, spec=spec)
        return y, pair.bind(dx, dk, x, kernel, spec=spec)

    def pair_jvp(primals, tangents, *, spec):
        tangents = tuple(ad.instantiate_zeros(t) for t in tangents)
        return jax.jvp(lambda dx, dk, x, k: bind(dx, k, spec) + bind(x, dk, spec),
                       tuple(primals), tangents)

    ad.primitive_jvps[conv] = conv_jvp
    ad.primitive_jvps[pair] = pair_jvp

    # reverse mode: the formulation's backward
    def conv_transpose(ct, x, kernel, *, spec):
        wants_x, wants_k = ad.is_undefined_primal(x), ad.is_undefined_primal(kernel)
        if wants_x and wants_k:
            raise ValueError(f"jaxconv_{name}: the conv is bilinear, not linear in both operands")
        if _is_zero(ct):
            return [ad.Zero(x.aval) if wants_x else None,
                    ad.Zero(kernel.aval) if wants_k else None]
        if wants_x:
            return [backward.input_grad(ct, kernel, spec).astype(x.aval.dtype), None]
        return [None, backward.kernel_grad(x, ct, spec).astype(kernel.aval.dtype)]

    def pair_transpose(ct, dx, dk, x, kernel, *, spec):
        wants_x, wants_k = ad.is_undefined_primal(dx), ad.is_undefined_primal(dk)
        if _is_zero(ct):
            return [ad.Zero(dx.aval) if wants_x else None,
                    ad.Zero(dk.aval) if wants_k else None, None, None]
        if wants_x and wants_k:
            gx, gk = backward.grads(x, kernel, ct, spec)
            return [gx.astype(dx.aval.dtype), gk.astype(dk.aval.dtype), None, None]
        if wants_x:
            return [backward.input_grad(ct, kernel, spec).astype(dx.aval.dtype), None,
                    None, None]
        return [None, backward.kernel_grad(x, ct, spec).astype(dk.aval.dtype), None, None]

    ad.primitive_transposes[conv] = conv_transpose
    ad.primitive_transposes[pair] = pair_transpose

    # vmap: mapped inputs join the conv's batch; a mapped kernel is mapped over
    def conv_batch(args, dims, *, spec):
        (x, kernel), (bx, bk) = args, dims
        size = x.shape[bx] if bx is not None else kernel.shape[bk]
        if bk is None:
            xm = _merge(x, bx)
            y = conv.bind(xm, kernel, spec=spec.with_batch(xm.shape[0]))
            return _split(y, size, x.shape[1 if bx == 0 else 0]), 0
        x, kernel = _at_front(x, bx, size), _at_front(kernel, bk, size)
        return lax.map(lambda a: bind(a[0], a[1], spec), (x, kernel)), 0

    def pair_batch(args, dims, *, spec):
        (dx, dk, x, kernel), (bdx, bdk, bx, bk) = args, dims
        size = next(a.shape[d] for a, d in zip(args, dims) if d is not None)
        if bdk is None and bk is None:
            dx, x = _at_front(dx, bdx, size), _at_front(x, bx, size)
            y = pair.bind(_merge(dx, 0), dk, _merge(x, 0), kernel,
                          spec=spec.with_batch(size * x.shape[1]))
            return _split(y, size, x.shape[1]), 0
        front = tuple(_at_front(a, d, size) for a, d in zip(args, dims))
        return lax.map(lambda a: pair.bind(*a, spec=spec.with_batch(a[2].shape[0])), front), 0

    batching.primitive_batchers[conv] = conv_batch
    batching.primitive_batchers[pair] = pair_batch
    return bind


def _merge(x: Array, dim: int) -> Array:
    """``x`` with its mapped axis ``dim`` merged into the conv's batch axis (mapped axis
    outer)."""
    x = jnp.moveaxis(x, dim, 0)
    return x.reshape((x.shape[0] * x.shape[1], *x.shape[2:]))


def _split(y: Array, size: int, batch: int) -> Array:
    """The inverse of `_merge` on the conv's output: the mapped axis first."""
    return y.reshape((size, batch, *y.shape[1:]))
