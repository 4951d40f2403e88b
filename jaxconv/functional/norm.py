"""Batch normalisation over the batch statistics, with a derivative written out.

Autodiff of batch normalisation differentiates through the mean and the variance separately: on
XLA:CPU that is five channel reductions and three full-size temporaries per layer. The
derivative needs only two reductions. As a tangent map (forward mode), with ``x_hat`` the
normalised input and ``u = dx * scale / sigma``:

    dy = u + (dbias - mean(u)) + x_hat * (dscale - mean(x_hat * u))

Each parenthesis is one value per channel, so the transpose JAX derives from it (reverse mode)
reduces exactly twice, ``sum(dy)`` and ``sum(dy * x_hat)``, and makes one elementwise pass:
the hand-written backward, with forward mode and every higher derivative for free.

The forward computes what ``flax.nnx.BatchNorm`` computes, op for op (``E[x^2] - E[x]^2``
clipped at zero, Flax's ``use_fast_variance``), so the values are the same bits; except where
the policy sums the channels natively (`jaxconv.functional.policy.native_batch_norm`, policy
version 4 on AVX-512 CPUs with the extension): there the four reductions, the statistics'
and the backward's, are `jaxconv.functional.channel_sums`' one-pass sums, equal up to float
rounding, and the backward's broadcast of per-channel values is its ``expand`` primitive,
whose transpose is that native reduction.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxconv.functional import channel_sums, policy
from jaxconv.functional.formulations import Compilation
from jaxconv.typing import Array


def _per_channel(v: Array, ndim: int) -> Array:
    """``(C,)`` as ``(1, ..., 1, C)``: broadcast against an ``ndim``-dimensional input."""
    return v.reshape((1,) * (ndim - 1) + v.shape)


def _forward(x: Array, scale: Array, bias: Array, epsilon: float, native: bool
             ) -> tuple[tuple[Array, Array, Array], Array]:
    axes = tuple(range(x.ndim - 1))
    if native:
        count = x.size // x.shape[-1]
        total, squares = channel_sums.channel_sums(x, x, jnp.zeros(x.shape[-1], x.dtype))
        mean, mean_square = total / count, squares / count
    else:
        mean, mean_square = x.mean(axes), jax.lax.square(x).mean(axes)
    var = jnp.maximum(0.0, mean_square - jax.lax.square(mean))
    inv = jax.lax.rsqrt(var + epsilon)
    y = (x - _per_channel(mean, x.ndim)) * _per_channel(inv * scale, x.ndim) \
        + _per_channel(bias, x.ndim)
    return (y, mean, var), inv


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4))
def _normalise(x: Array, scale: Array, bias: Array, epsilon: float, native: bool
               ) -> tuple[Array, Array, Array]:
    return _forward(x, scale, bias, epsilon, native)[0]


@_normalise.defjvp
def _normalise_jvp(epsilon, native, primals, tangents):
    (x, scale, bias), (dx, dscale, dbias) = primals, tangents
    (y, mean, var), inv = _forward(x, scale, bias, epsilon, native)
    axes, ndim = tuple(range(x.ndim - 1)), x.ndim
    centred = x - _per_channel(mean, ndim)
    x_hat = centred * _per_channel(inv, ndim)
    u = dx * _per_channel(inv * scale, ndim)
    shift, stretch = dbias - u.mean(axes), dscale - (x_hat * u).mean(axes)
    if native:
        dy = u + channel_sums.expand(shift, stretch, x, mean, inv)
    else:
        dy = u + _per_channel(shift, ndim) + x_hat * _per_channel(stretch, ndim)
    dmean = dx.mean(axes)
    dvar = 2.0 * (centred * dx).mean(axes)
    return (y, mean, var), (dy, dmean, dvar)


def batch_norm(x: Array, scale: Array, bias: Array, *, epsilon: float = 1e-5,
               compilation=None) -> tuple[Array, Array, Array]:
    """Normalises ``x`` over every axis but the last with its own batch statistics.

    Args:
      x: ``(..., C)``, a floating dtype.
      scale: ``(C,)``, ``x``'s dtype.
      bias: ``(C,)``, ``x``'s dtype.
      epsilon: added to the variance.
      compilation: the `jaxconv.functional.Compilation` of the program (its policy version
        decides whether the channels are summed natively, `policy.native_batch_norm`);
        ``None``: the current policy.

    Returns:
      ``(y, mean, var)``: ``(x - mean) / sqrt(var + epsilon) * scale + bias`` and the batch
      statistics (``var`` biased, as BatchNorm's running average takes it). Derivatives of
      every order and mode flow to ``x``, ``scale`` and ``bias`` through all three, by the
      written-out tangent map (the module docstring).

    >>> import jax.numpy as jnp
    >>> y, mean, var = batch_norm(jnp.array([[1.0], [3.0]]), jnp.ones(1), jnp.zeros(1))
    >>> y.ravel().round(3).tolist(), mean.tolist(), var.tolist()
    ([-1.0, 1.0], [2.0], [1.0])
    """
    channels = x.shape[-1] if x.ndim else None
    if compilation is not None and not isinstance(compilation, Compilation):
        raise TypeError(f"batch_norm: compilation={compilation!r}; expected a "
                        "jaxconv.functional.Compilation or None")
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
        # an empty batch keeps lax's reductions (whose gradients over no rows are zeros)
        return _normalise(x, scale, bias, epsilon,
                          policy.native_batch_norm(compilation, x.dtype) and x.size > 0)
