"""Blocks built on depthwise convolutions: MobileNetV1 separable, MobileNetV2 inverted
residual, ShuffleNet v1 unit.

Notation as in `jaxconv.blocks.resnet`: ``BN(c) = 2c``, ``SE`` the optional squeeze-excitation.
``drop_path`` (inverted residual and shuffle unit) drops the branch that is added to the input
(stochastic depth; no parameters).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv import functional
from jaxconv.blocks import _parts as parts
from jaxconv.typing import Array


class SeparableBlock(nnx.Module):
    """MobileNetV1 depthwise-separable block (Howard et al. 2017, arXiv:1704.04861).

    Depthwise 3x3 (stride) → BN → ReLU → 1x1 → BN → ReLU; no shortcut, as in the paper.

    Parameters: ``9 C_in + BN(C_in) + C_in C_out + BN(C_out)``.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      strides: stride of the block's spatial conv (2 halves the height and width).
      rngs: the random keys the parameters are drawn from.
    """

    def __init__(self, in_features: int, out_features: int, *, strides: int = 1,
                 rngs: nnx.Rngs):
        parts.check_positive("separable", in_features=in_features, out_features=out_features,
                             strides=strides)
        self.depthwise = parts.depthwise_norm(in_features, 3, strides, rngs=rngs)
        self.pointwise = parts.conv_norm(in_features, out_features, 1, rngs=rngs)

    @staticmethod
    def param_count(in_features: int, out_features: int, *, strides: int = 1) -> int:
        return (parts.depthwise_norm_params(in_features, 3)
                + parts.conv_norm_params(in_features, out_features, 1))

    def __call__(self, x: Array) -> Array:
        return self.pointwise(self.depthwise(x))


class InvertedResidual(nnx.Module):
    """MobileNetV2 inverted residual (Sandler et al. 2018, arXiv:1801.04381).

    1x1 expand to ``h = C_in * expansion`` → BN → ReLU6 → depthwise 3x3 (stride) → BN → ReLU6
    → [SE, as MobileNetV3 adds] → linear 1x1 project → BN, plus the input when the stride is 1
    and ``C_in == C_out`` (no projection shortcut, as in the paper). ``expansion=1`` skips the
    expand.

    Parameters: ``[C_in h + BN(h)] + 9 h + BN(h) + SE(h) + h C_out + BN(C_out)``.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      strides: stride of the block's spatial conv (2 halves the height and width).
      expansion: inner width as a multiple of ``C_in``.
      se_ratio: hidden width of the optional squeeze-excitation, a share of ``C_out`` (0: none).
      drop_path: stochastic-depth rate of the residual branch in training (0: off).
      rngs: the random keys the parameters are drawn from.
    """

    def __init__(self, in_features: int, out_features: int, *, strides: int = 1,
                 expansion: int = 6, se_ratio: float = 0.0, drop_path: float = 0.0,
                 rngs: nnx.Rngs):
        parts.check_positive("inverted_residual", in_features=in_features,
                             out_features=out_features, strides=strides, expansion=expansion)
        hidden = in_features * expansion
        self.expand = (parts.conv_norm(in_features, hidden, 1, activation=jax.nn.relu6, rngs=rngs)
                       if expansion != 1 else None)
        self.depthwise = parts.depthwise_norm(hidden, 3, strides, activation=jax.nn.relu6,
                                              rngs=rngs)
        self.se = parts.optional_se(hidden, se_ratio, rngs)
        self.project = parts.conv_norm(hidden, out_features, 1, activation=None, rngs=rngs)
        self.residual = strides == 1 and in_features == out_features
        self.drop_path = parts.DropPath(drop_path, rngs=rngs)

    @staticmethod
    def param_count(in_features: int, out_features: int, *, strides: int = 1,
                    expansion: int = 6, se_ratio: float = 0.0) -> int:
        h = in_features * expansion
        expand = parts.conv_norm_params(in_features, h, 1) if expansion != 1 else 0
        return (expand + parts.depthwise_norm_params(h, 3) + parts.se_params(h, se_ratio)
                + parts.conv_norm_params(h, out_features, 1))

    def __call__(self, x: Array) -> Array:
        y = x if self.expand is None else self.expand(x)
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + self.drop_path(y) if self.residual else y

    def residual_norm(self) -> nnx.BatchNorm | None:
        return self.project.norm if self.residual else None


class ShuffleUnit(nnx.Module):
    """ShuffleNet v1 unit (Zhang, Zhou, Lin and Sun 2017, arXiv:1707.01083).

    Grouped 1x1 (``groups``; ungrouped when ``C_in`` is not divisible, as the paper's first
    stage) → BN → ReLU → channel shuffle → depthwise 3x3 (stride) → BN → grouped 1x1 → BN.
    Stride 2: the branch makes ``b = C_out - C_in`` channels, concatenated with a 3x3 average
    pool of the input. Stride 1: added to the input (a 1x1 + BN projection when
    ``C_in != C_out``). Then ReLU. Inner width ``m = round(C_out / 4)`` to a multiple of
    ``groups`` (``g``); ``g1`` is the first 1x1's groups.

    Parameters: ``C_in m / g1 + BN(m) + 9 m + BN(m) + m b / g + BN(b) + P``.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      strides: stride of the block's spatial conv (2 halves the height and width).
      groups: groups of the two grouped 1x1 convs (and of the channel shuffle).
      drop_path: stochastic-depth rate of the residual branch in training (0: off).
      rngs: the random keys the parameters are drawn from.
    """

    def __init__(self, in_features: int, out_features: int, *, strides: int = 1,
                 groups: int = 2, drop_path: float = 0.0, rngs: nnx.Rngs):
        parts.check_positive("shuffle", in_features=in_features, out_features=out_features,
                             strides=strides, groups=groups)
        mid, branch, first_groups = self.widths(in_features, out_features, strides, groups)
        self.groups, self.first_groups, self.strides = groups, first_groups, strides
        self.reduce = parts.conv_norm(in_features, mid, 1, groups=first_groups, rngs=rngs)
        self.depthwise = parts.depthwise_norm(mid, 3, strides, activation=None, rngs=rngs)
        self.expand = parts.conv_norm(mid, branch, 1, groups=groups, activation=None, rngs=rngs)
        self.shortcut = (parts.projection(in_features, out_features, 1, rngs)
                         if strides == 1 else None)
        self.drop_path = parts.DropPath(drop_path, rngs=rngs)

    @staticmethod
    def widths(in_features: int, out_features: int, strides: int,
               groups: int) -> tuple[int, int, int]:
        branch = out_features - in_features if strides != 1 else out_features
        if branch < 1 or branch % groups:
            raise ValueError(
                f"shuffle: a stride-{strides} unit from {in_features} to {out_features} channels "
                f"needs a branch width ({branch}) that is positive and divisible by "
                f"groups={groups}")
        mid = parts.scaled(out_features, 0.25, multiple=groups)
        return mid, branch, groups if in_features % groups == 0 else 1

    @classmethod
    def param_count(cls, in_features: int, out_features: int, *, strides: int = 1,
                    groups: int = 2) -> int:
        m, b, g1 = cls.widths(in_features, out_features, strides, groups)
        shortcut = parts.projection_params(in_features, out_features, 1) if strides == 1 else 0
        return (in_features * m // g1 + parts.norm_params(m) + parts.depthwise_norm_params(m, 3)
                + m * b // groups + parts.norm_params(b) + shortcut)

    def __call__(self, x: Array) -> Array:
        y = functional.channel_shuffle(self.reduce(x), self.groups)
        y = self.expand(self.depthwise(y))
        if self.strides != 1:
            return jax.nn.relu(jnp.concatenate([parts.pool(x, "avg", self.strides), y], axis=-1))
        y = self.drop_path(y)
        return jax.nn.relu(y + (x if self.shortcut is None else self.shortcut(x)))

    def residual_norm(self) -> nnx.BatchNorm | None:
        """The branch's last BatchNorm when it is added to the input (stride 1)."""
        return self.expand.norm if self.strides == 1 else None
