"""Residual blocks: ResNet basic and bottleneck (He et al.), ResNeXt (Xie et al.).

Notation in the parameter formulas: ``C_in``, ``C_out`` the block's channels, ``m`` the width
inside the bottleneck, ``BN(c) = 2c`` (scale and bias), ``P`` the projection shortcut
(``C_in * C_out + BN(C_out)`` when the stride is not 1 or ``C_in != C_out``, else 0) and ``SE``
the optional squeeze-excitation (`SqueezeExcite.param_count`). ``drop_path`` is the rate of
stochastic depth on the residual branch (`jaxconv.blocks._parts.DropPath`; no parameters).
"""

from __future__ import annotations

import jax
from flax import nnx

from jaxconv.blocks import _parts as parts
from jaxconv.typing import Array


class _Residual(nnx.Module):
    """``relu(body(x) + shortcut(x))`` with the shortcut and SE every residual block shares."""

    def _init_shortcut(self, in_features: int, out_features: int, strides: int,
                       se_ratio: float, rngs: nnx.Rngs, drop_path: float = 0.0) -> None:
        self.se = parts.optional_se(out_features, se_ratio, rngs)
        self.shortcut = parts.projection(in_features, out_features, strides, rngs)
        self.drop_path = parts.DropPath(drop_path, rngs=rngs)

    def body(self, x: Array) -> Array:
        raise NotImplementedError

    def __call__(self, x: Array) -> Array:
        y = self.body(x)
        if self.se is not None:
            y = self.se(y)
        y = self.drop_path(y)
        return jax.nn.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class BasicBlock(_Residual):
    """ResNet basic block: two 3x3 convs (He, Zhang, Ren and Sun 2015, arXiv:1512.03385).

    3x3 conv (stride) → BN → ReLU → 3x3 conv → BN → [SE] → + shortcut → ReLU.

    Parameters: ``9 C_in C_out + 9 C_out^2 + 2 BN(C_out) + P + SE``.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      strides: stride of the block's spatial conv (2 halves the height and width).
      se_ratio: hidden width of the optional squeeze-excitation, a share of ``C_out`` (0: none).
      drop_path: stochastic-depth rate of the residual branch in training (0: off).
      rngs: the random keys the parameters are drawn from.
    """

    def __init__(self, in_features: int, out_features: int, *, strides: int = 1,
                 se_ratio: float = 0.0, drop_path: float = 0.0, rngs: nnx.Rngs):
        parts.check_positive("basic", in_features=in_features, out_features=out_features,
                             strides=strides)
        self.conv1 = parts.conv_norm(in_features, out_features, 3, strides, rngs=rngs)
        self.conv2 = parts.conv_norm(out_features, out_features, 3, activation=None, rngs=rngs)
        self._init_shortcut(in_features, out_features, strides, se_ratio, rngs, drop_path)

    @staticmethod
    def param_count(in_features: int, out_features: int, *, strides: int = 1,
                    se_ratio: float = 0.0) -> int:
        return (9 * in_features * out_features + 9 * out_features ** 2
                + 2 * parts.norm_params(out_features)
                + parts.projection_params(in_features, out_features, strides)
                + parts.se_params(out_features, se_ratio))

    def body(self, x: Array) -> Array:
        return self.conv2(self.conv1(x))

    def residual_norm(self) -> nnx.BatchNorm:
        return self.conv2.norm


class _ReduceExpand(_Residual):
    """The body `Bottleneck` and `ResNeXtBlock` share: 1x1 reduce to ``m`` → 3x3 in ``groups``
    (the stride) → 1x1 expand, each with BN; ReLU after all but the last."""

    def _init_body(self, in_features: int, mid: int, out_features: int, strides: int,
                   groups: int, rngs: nnx.Rngs) -> None:
        self.reduce = parts.conv_norm(in_features, mid, 1, rngs=rngs)
        self.conv = parts.conv_norm(mid, mid, 3, strides, groups=groups, rngs=rngs)
        self.expand = parts.conv_norm(mid, out_features, 1, activation=None, rngs=rngs)

    @staticmethod
    def _count(in_features: int, mid: int, out_features: int, strides: int, groups: int,
               se_ratio: float) -> int:
        """``C_in m + 9 m^2 / g + m C_out + 2 BN(m) + BN(C_out) + P + SE``."""
        return (in_features * mid + 9 * mid * mid // groups + mid * out_features
                + 2 * parts.norm_params(mid) + parts.norm_params(out_features)
                + parts.projection_params(in_features, out_features, strides)
                + parts.se_params(out_features, se_ratio))

    def body(self, x: Array) -> Array:
        return self.expand(self.conv(self.reduce(x)))

    def residual_norm(self) -> nnx.BatchNorm:
        return self.expand.norm


class Bottleneck(_ReduceExpand):
    """ResNet bottleneck: 1x1 reduce → 3x3 → 1x1 expand (He et al. 2015, arXiv:1512.03385).

    The 3x3 carries the stride (ResNet v1.5). ``ratio`` sets the inner width
    ``m = round(C_out * ratio)`` (the paper's expansion 4 is ``ratio=0.25``).

    Parameters: ``C_in m + 9 m^2 + m C_out + 2 BN(m) + BN(C_out) + P + SE``.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      strides: stride of the block's spatial conv (2 halves the height and width).
      ratio: inner width ``m`` as a share of ``C_out`` (ResNet's expansion 4 is 0.25).
      se_ratio: hidden width of the optional squeeze-excitation, a share of ``C_out`` (0: none).
      drop_path: stochastic-depth rate of the residual branch in training (0: off).
      rngs: the random keys the parameters are drawn from.
    """

    def __init__(self, in_features: int, out_features: int, *, strides: int = 1,
                 ratio: float = 0.25, se_ratio: float = 0.0, drop_path: float = 0.0,
                 rngs: nnx.Rngs):
        parts.check_positive("bottleneck", in_features=in_features, out_features=out_features,
                             strides=strides)
        mid = parts.scaled(out_features, ratio, block="bottleneck")
        self._init_body(in_features, mid, out_features, strides, 1, rngs)
        self._init_shortcut(in_features, out_features, strides, se_ratio, rngs, drop_path)

    @staticmethod
    def param_count(in_features: int, out_features: int, *, strides: int = 1,
                    ratio: float = 0.25, se_ratio: float = 0.0) -> int:
        return _ReduceExpand._count(in_features, parts.scaled(out_features, ratio), out_features,
                                    strides, 1, se_ratio)


class ResNeXtBlock(_ReduceExpand):
    """ResNeXt bottleneck: the 3x3 split into ``cardinality`` groups (Xie, Girshick, Dollár, Tu
    and He 2016, arXiv:1611.05431).

    Inner width ``m = round(C_out * ratio)`` to a multiple of ``cardinality`` (``g``).

    Parameters: ``C_in m + 9 m^2 / g + m C_out + 2 BN(m) + BN(C_out) + P + SE``.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      strides: stride of the block's spatial conv (2 halves the height and width).
      cardinality: groups of the 3x3 conv.
      ratio: inner width ``m`` as a share of ``C_out``.
      se_ratio: hidden width of the optional squeeze-excitation, a share of ``C_out`` (0: none).
      drop_path: stochastic-depth rate of the residual branch in training (0: off).
      rngs: the random keys the parameters are drawn from.
    """

    def __init__(self, in_features: int, out_features: int, *, strides: int = 1,
                 cardinality: int = 8, ratio: float = 0.5, se_ratio: float = 0.0,
                 drop_path: float = 0.0, rngs: nnx.Rngs):
        parts.check_positive("resnext", in_features=in_features, out_features=out_features,
                             strides=strides, cardinality=cardinality)
        mid = parts.scaled(out_features, ratio, multiple=cardinality, block="resnext")
        self._init_body(in_features, mid, out_features, strides, cardinality, rngs)
        self._init_shortcut(in_features, out_features, strides, se_ratio, rngs, drop_path)

    @staticmethod
    def param_count(in_features: int, out_features: int, *, strides: int = 1,
                    cardinality: int = 8, ratio: float = 0.5, se_ratio: float = 0.0) -> int:
        mid = parts.scaled(out_features, ratio, multiple=cardinality)
        return _ReduceExpand._count(in_features, mid, out_features, strides, cardinality, se_ratio)
