"""Batch normalisation over the batch statistics, with its backward written out.

Autodiff of batch normalisation differentiates through the mean and the variance separately: on
XLA:CPU that is five channel reductions and three full-size temporaries per layer. The
backward needs only two reductions, ``sum(dy)`` and ``sum(dy * (x - mean))``, and one
elementwise pass:

    dx = scale / sigma * (dy - mean(dy) - x_hat * mean(dy * x_hat))

The forward computes what ``flax.nnx.BatchNorm`` computes, op for op (``E[x^2] - E[x]^2``
clipped at zero, Flax's ``use_fast_variance``), so the values are the same bits.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxconv.functional.formulations import in_forward_mode_ad
from jaxconv.typing import Array


def _per_channel(v: Array, ndim: int) -> Array:
    """``(C,)`` as ``(1, ..., 1, C)``: broadcast against an ``ndim``-dimensional input."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def _forward(x: Array, scale: Array, bias: Array, epsilon: float
             ) -> tuple[tuple[Array, Array, Array], Array]:
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axes)
    var = jnp.maximum(0.0, jax.lax.square(x).mean(axes) - jax.lax.square(mean))
    inv = jax.lax.rsqrt(var + epsilon)
    y = (x - _per_channel(mean, x.ndim)) * _per_channel(inv * scale, x.ndim) \
        + _per_channel(bias, x.ndim)
    return (y, mean, var), inv


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _with_backward(x: Array, scale: Array, bias: Array, epsilon: float
                   ) -> tuple[Array, Array, Array]:
    return _forward(x, scale, bias, epsilon)[0]


def _fwd(x, scale, bias, epsilon):
    out, inv = _forward(x, scale, bias, epsilon)
    return out, (x, out[1], inv, scale)


def _bwd(epsilon, residuals, cotangents):
    x, mean, inv, scale = residuals
    dy, dmean, dvar = cotangents
    axes = tuple(range(x.ndim - 1))
    n = max(x.size // x.shape[-1], 1)        # an empty batch: zero gradients, not a crash
    sum_dy = dy.sum(axes)
    centred = x - _per_channel(mean, x.ndim)
    dscale = jnp.sum(dy * centred, axes) * inv                   # sum(dy * x_hat)
    dx = _per_channel(inv * scale, x.ndim) * (
        dy - _per_channel(sum_dy / n, x.ndim) - centred * _per_channel(inv * dscale / n, x.ndim)
    ) + _per_channel(dmean / n, x.ndim) + centred * _per_channel((2.0 / n) * dvar, x.ndim)
    return dx, dscale, sum_dy


_with_backward.defvjp(_fwd, _bwd)


def batch_norm(x: Array, scale: Array, bias: Array, *, epsilon: float = 1e-5
               ) -> tuple[Array, Array, Array]:
    """Normalises ``x`` over every axis but the last with its own batch statistics.

    Args:
      x: ``(..., C)``, a floating dtype.
      scale: ``(C,)``, ``x``'s dtype.
      bias: ``(C,)``, ``x``'s dtype.
      epsilon: added to the variance.

    Returns:
      ``(y, mean, var)``: ``(x - mean) / sqrt(var + epsilon) * scale + bias`` and the batch
      statistics (``var`` biased, as BatchNorm's running average takes it). Gradients flow to
      ``x``, ``scale`` and ``bias`` through all three, by the written-out backward, which has
      no forward mode: for ``jax.jvp`` or ``jax.hessian``, trace inside
      `jaxconv.functional.forward_mode_ad` (plain autodiff, the same values).

    >>> import jax.numpy as jnp
    >>> y, mean, var = batch_norm(jnp.array([[1.0], [3.0]]), jnp.ones(1), jnp.zeros(1))
    >>> y.ravel().round(3).tolist(), mean.tolist(), var.tolist()
    ([-1.0, 1.0], [2.0], [1.0])
    """
    channels = x.shape[-1] if x.ndim else None
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"batch_norm: x has dtype {x.dtype}; expected a floating dtype")
    for name, v in (("scale", scale), ("bias", bias)):
        if jnp.shape(v) != (channels,):
            raise ValueError(f"batch_norm: {name} has shape {jnp.shape(v)}; expected "
                             f"({channels},), one value per channel of x {jnp.shape(x)}")
        if v.dtype != x.dtype:
            raise TypeError(f"batch_norm: {name} has dtype {v.dtype}; expected x's dtype "
                            f"{x.dtype} (cast one of them)")
    with jax.named_scope("jaxconv.batch_norm"):
        if in_forward_mode_ad():
            return _forward(x, scale, bias, epsilon)[0]
        return _with_backward(x, scale, bias, epsilon)
