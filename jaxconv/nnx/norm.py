"""``flax.nnx.BatchNorm`` with a faster backward, and working under strict dtype promotion."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes as flax_dtypes

from jaxconv import functional
from jaxconv.typing import Array


class BatchNorm(nnx.BatchNorm):
    """``flax.nnx.BatchNorm`` (same arguments, parameters and statistics; its values, up to float
    rounding where the channels are summed natively).

    In training mode on float32 channels-last inputs (the default ``axis=-1``, no ``mask``,
    ``axis_name``, custom ``promote_dtype`` or ``use_fast_variance=False``) it normalises with
    `jaxconv.functional.batch_norm`, whose derivative is written out: derivatives of every order
    and mode equal to autodiff's up to float rounding, and the same forward bits under policy
    versions 1-3; from version 4, on AVX-512 CPUs with the native extension, the channel sums
    are native and the values Flax's up to float rounding (`jaxconv.nnx.set_compilation` pins
    a version, as ``train.policy_version`` does for a run). Everything
    else is Flax's own code. Under strict dtype promotion it also works for bfloat16 inputs, whose
    statistics Flax computes in float32 on purpose.

    Args:
      num_features: channels.
      use_running_average: normalise with the running statistics (eval mode).
      momentum: of the running statistics, ``stat = momentum * stat + (1 - momentum) * batch``.
      epsilon: added to the variance.
      rngs: ``nnx.Rngs``.
      **kwargs: the rest of ``flax.nnx.BatchNorm``'s arguments, with their meaning there.
    """

    def _fast(self, x: Array, mask: Array | None) -> bool:
        params = [v[...] for v in (self.scale, self.bias) if v is not None]
        return (mask is None and self.axis_name is None and self.axis in (-1, x.ndim - 1)
                and self.promote_dtype is flax_dtypes.promote_dtype
                and self.use_fast_variance and len(params) == 2 and x.dtype == jnp.float32
                and self.dtype in (None, jnp.float32)
                and all(p.dtype == jnp.float32 for p in params))

    def __call__(self, x: Array, use_running_average: bool | None = None, *,
                 mask: Array | None = None) -> Array:
        frozen = self.use_running_average if use_running_average is None \
            else use_running_average
        if frozen is None or frozen or not self._fast(x, mask):
            with jax.numpy_dtype_promotion("standard"):
                return super().__call__(x, use_running_average=use_running_average, mask=mask)
        y, mean, var = functional.batch_norm(x, self.scale[...], self.bias[...],
                                             epsilon=self.epsilon,
                                             compilation=getattr(self, "compilation", None))
        stop = jax.lax.stop_gradient if (self.mean._can_update or self.var._can_update) \
            else (lambda v: v)
        self.mean[...] = stop(self.momentum * self.mean[...] + (1 - self.momentum) * mean)
        self.var[...] = stop(self.momentum * self.var[...] + (1 - self.momentum) * var)
        return y
