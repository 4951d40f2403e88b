"""Flax NNX pooling layers: no parameters, one call to `jaxconv.functional` each.

Flax NNX has pooling functions but no pooling modules; these hold a pool's settings so a pool can
sit in a model's attribute tree like any layer (``self.pool = MaxPool((2, 2), strides=(2, 2))``).
Arguments are those of `jaxconv.functional.max_pool` / ``avg_pool`` plus Keras's ``data_format``.
"""

from __future__ import annotations

from typing import Any

from flax import nnx

from jaxconv import functional
from jaxconv.functional import pool as pooling
from jaxconv.nnx import layer_args
from jaxconv.typing import Array, IntOrSeq, PaddingLike


class _Pool(nnx.Module):
    op: Any = None

    def __init__(self, window_shape: IntOrSeq, strides: IntOrSeq | None = None,
                 padding: PaddingLike = "VALID", *, padding_mode: str = "zeros",
                 window_dilation: IntOrSeq | None = 1, data_format: str = "channels_last"):
        name = type(self).__name__
        self.window_shape = tuple(pooling.window_shape_tuple(name, window_shape))
        self.strides, self.padding = layer_args.frozen(strides), layer_args.frozen(padding)
        self.padding_mode, self.window_dilation = padding_mode, layer_args.frozen(window_dilation)
        self.data_format = layer_args.data_format(data_format, name)

    def _extra(self) -> dict[str, Any]:
        return {}

    def __call__(self, inputs: Array) -> Array:
        rank = len(self.window_shape)
        x = layer_args.to_channels_last(inputs, rank, self.data_format, type(self).__name__)
        y = type(self).op(x, self.window_shape, self.strides, self.padding,
                          padding_mode=self.padding_mode, window_dilation=self.window_dilation,
                          **self._extra())
        return layer_args.from_channels_last(y, rank, self.data_format)


class MaxPool(_Pool):
    """Max pooling over ``len(window_shape)`` spatial dims (`jaxconv.functional.max_pool`).

    >>> import jax.numpy as jnp
    >>> MaxPool((2, 2), strides=(2, 2))(jnp.ones((1, 8, 8, 3))).shape
    (1, 4, 4, 3)

    Args:
      window_shape: the window, one int per spatial dim (its length is the spatial rank).
      strides: stride, or one per spatial dim (``None``: 1).
      padding: any padding form the convs take (default ``"VALID"``).
      padding_mode: the fill, ``"zeros"`` (padded positions are empty) or as the convs take it.
      window_dilation: PyTorch's ``dilation``.
      data_format: ``"channels_last"`` or ``"channels_first"``.
    """

    op = staticmethod(functional.max_pool)


class AvgPool(_Pool):
    """Average pooling (`jaxconv.functional.avg_pool`); ``count_include_pad`` as there.

    >>> import jax.numpy as jnp
    >>> AvgPool((3, 3), padding="SAME", count_include_pad=False)(jnp.ones((1, 8, 8, 3))).shape
    (1, 8, 8, 3)

    Args:
      window_shape: the window, one int per spatial dim (its length is the spatial rank).
      strides: stride, or one per spatial dim (``None``: 1).
      padding: any padding form the convs take (default ``"VALID"``).
      padding_mode: the fill, ``"zeros"`` (padded positions are empty) or as the convs take it.
      window_dilation: PyTorch's ``dilation``.
      data_format: ``"channels_last"`` or ``"channels_first"``.
      count_include_pad: count zero-padded positions in the divisor (``True``) or not.
    """

    op = staticmethod(functional.avg_pool)

    def __init__(self, window_shape: IntOrSeq, strides: IntOrSeq | None = None,
                 padding: PaddingLike = "VALID", *, padding_mode: str = "zeros",
                 window_dilation: IntOrSeq | None = 1, count_include_pad: bool = True,
                 data_format: str = "channels_last"):
        super().__init__(window_shape, strides, padding, padding_mode=padding_mode,
                         window_dilation=window_dilation, data_format=data_format)
        self.count_include_pad = count_include_pad

    def _extra(self) -> dict[str, Any]:
        return {"count_include_pad": self.count_include_pad}


class _GlobalPool(nnx.Module):
    op: Any = None

    def __init__(self, *, rank: int | None = None, keepdims: bool = False,
                 data_format: str = "channels_last"):
        self.rank, self.keepdims = rank, keepdims
        self.data_format = layer_args.data_format(data_format, type(self).__name__)

    def __call__(self, inputs: Array) -> Array:
        x = layer_args.to_channels_last(inputs, self.rank, self.data_format, type(self).__name__)
        y = type(self).op(x, rank=self.rank, keepdims=self.keepdims)
        return layer_args.from_channels_last(y, self.rank, self.data_format) if self.keepdims else y


class GlobalAvgPool(_GlobalPool):
    """The mean over all spatial positions, ``(N, *spatial, C) -> (N, C)``
    (`jaxconv.functional.global_avg_pool`).

    Args:
      rank: the number of spatial dims (``None``: all but the first and last axes).
      keepdims: keep the spatial dims, as size 1.
      data_format: ``"channels_last"`` or ``"channels_first"``.
    """

    op = staticmethod(functional.global_avg_pool)


class GlobalMaxPool(_GlobalPool):
    """The largest value over all spatial positions (`jaxconv.functional.global_max_pool`).

    Args:
      rank: the number of spatial dims (``None``: all but the first and last axes).
      keepdims: keep the spatial dims, as size 1.
      data_format: ``"channels_last"`` or ``"channels_first"``.
    """

    op = staticmethod(functional.global_max_pool)
