"""Flax Linen pooling layers, the twins of `jaxconv.nnx.pooling` (no parameters)."""

from __future__ import annotations

from flax import linen as nn

from jaxconv import functional
from jaxconv.functional import pool as pooling
from jaxconv.nnx import layer_args
from jaxconv.typing import Array, IntOrSeq, PaddingLike


class _Pool(nn.Module):
    window_shape: IntOrSeq
    strides: IntOrSeq | None = None
    padding: PaddingLike = "VALID"
    padding_mode: str = "zeros"
    window_dilation: IntOrSeq | None = 1
    data_format: str = "channels_last"

    def _apply(self, op, inputs: Array, **extra) -> Array:
        name = type(self).__name__
        window = pooling.window_shape_tuple(name, self.window_shape)
        fmt = layer_args.data_format(self.data_format, name)
        x = layer_args.to_channels_last(inputs, len(window), fmt, name)
        y = op(x, window, self.strides, self.padding, padding_mode=self.padding_mode,
               window_dilation=self.window_dilation, **extra)
        return layer_args.from_channels_last(y, len(window), fmt)


class MaxPool(_Pool):
    """Max pooling (`jaxconv.functional.max_pool`), the twin of `jaxconv.nnx.MaxPool`.

    Attributes:
      window_shape: the window, one int per spatial dim (its length is the spatial rank).
      strides: stride, or one per spatial dim (``None``: 1).
      padding: any padding form the convs take (default ``"VALID"``).
      padding_mode: the fill, ``"zeros"`` (padded positions are empty) or as the convs take it.
      window_dilation: PyTorch's ``dilation``.
      data_format: ``"channels_last"`` or ``"channels_first"``.
    """

    def __call__(self, inputs: Array) -> Array:
        return self._apply(functional.max_pool, inputs)


class AvgPool(_Pool):
    """Average pooling (`jaxconv.functional.avg_pool`), the twin of `jaxconv.nnx.AvgPool`.

    Attributes:
      window_shape: the window, one int per spatial dim (its length is the spatial rank).
      strides: stride, or one per spatial dim (``None``: 1).
      padding: any padding form the convs take (default ``"VALID"``).
      padding_mode: the fill, ``"zeros"`` (padded positions are empty) or as the convs take it.
      window_dilation: PyTorch's ``dilation``.
      data_format: ``"channels_last"`` or ``"channels_first"``.
      count_include_pad: count zero-padded positions in the divisor (``True``) or not.
    """

    count_include_pad: bool = True

    def __call__(self, inputs: Array) -> Array:
        return self._apply(functional.avg_pool, inputs, count_include_pad=self.count_include_pad)


class _GlobalPool(nn.Module):
    rank: int | None = None
    keepdims: bool = False
    data_format: str = "channels_last"

    def _apply(self, op, inputs: Array) -> Array:
        name = type(self).__name__
        fmt = layer_args.data_format(self.data_format, name)
        y = op(layer_args.to_channels_last(inputs, self.rank, fmt, name), rank=self.rank,
               keepdims=self.keepdims)
        return layer_args.from_channels_last(y, self.rank, fmt) if self.keepdims else y


class GlobalAvgPool(_GlobalPool):
    """The mean over all spatial positions (`jaxconv.functional.global_avg_pool`).

    Attributes:
      rank: the number of spatial dims (``None``: all but the first and last axes).
      keepdims: keep the spatial dims, as size 1.
      data_format: ``"channels_last"`` or ``"channels_first"``.
    """

    def __call__(self, inputs: Array) -> Array:
        return self._apply(functional.global_avg_pool, inputs)


class GlobalMaxPool(_GlobalPool):
    """The largest value over all spatial positions (`jaxconv.functional.global_max_pool`).

    Attributes:
      rank: the number of spatial dims (``None``: all but the first and last axes).
      keepdims: keep the spatial dims, as size 1.
      data_format: ``"channels_last"`` or ``"channels_first"``.
    """

    def __call__(self, inputs: Array) -> Array:
        return self._apply(functional.global_max_pool, inputs)
