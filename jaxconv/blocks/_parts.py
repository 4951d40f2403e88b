"""Small parts the bottleneck blocks share: norms, squeeze-excitation, projection shortcuts.

Everything here is built from `jaxconv.nnx` layers and Flax NNX norms; no block arithmetic is
written twice. Blocks are 2-D (images, ``(N, H, W, C)``).
"""

from __future__ import annotations

import jax
from flax import nnx

from jaxconv import functional
from jaxconv import nnx as jnn
from jaxconv.typing import Array


class LayerNorm(nnx.LayerNorm):
    """``flax.nnx.LayerNorm``, also under strict dtype promotion (as `jaxconv.nnx.BatchNorm`)."""

    def __call__(self, x: Array, *, mask: Array | None = None) -> Array:
        with jax.numpy_dtype_promotion("standard"):
            return super().__call__(x, mask=mask)


def norm(features: int, rngs: nnx.Rngs) -> jnn.BatchNorm:
    """BatchNorm as the ResNet family trains it (momentum 0.9); 2 * features parameters."""
    return jnn.BatchNorm(features, momentum=0.9, epsilon=1e-5, rngs=rngs)


def norm_params(features: int) -> int:
    return 2 * features


def check_positive(block: str, **values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{block}: {name}={value!r} must be a positive int")


def scaled(features: int, ratio: float, *, multiple: int = 1, name: str = "ratio",
           block: str = "") -> int:
    """``round(features * ratio)`` to a multiple of ``multiple``, at least ``multiple``."""
    if not isinstance(ratio, int | float) or isinstance(ratio, bool) or ratio <= 0:
        raise ValueError(f"{block}: {name}={ratio!r} must be a positive number")
    return max(multiple, round(features * ratio / multiple) * multiple)


class ConvNorm(nnx.Module):
    """A conv layer (no bias) followed by BatchNorm and an optional activation."""

    def __init__(self, conv: nnx.Module, features: int, activation=jax.nn.relu, *,
                 rngs: nnx.Rngs):
        self.conv = conv
        self.norm = norm(features, rngs)
        self.activation = activation

    def __call__(self, x: Array) -> Array:
        y = self.norm(self.conv(x))
        return y if self.activation is None else self.activation(y)


def conv_norm(in_features: int, out_features: int, kernel: int, strides: int = 1, *,
              groups: int = 1, activation=jax.nn.relu, rngs: nnx.Rngs) -> ConvNorm:
    """kxk conv (a `Pointwise` when k == 1) + BN + activation."""
    if kernel == 1:
        conv = jnn.Pointwise(in_features, out_features, strides=(strides, strides),
                             feature_group_count=groups, use_bias=False, rngs=rngs)
    else:
        conv = jnn.Conv(in_features, out_features, (kernel, kernel), strides=strides,
                        feature_group_count=groups, use_bias=False, rngs=rngs)
    return ConvNorm(conv, out_features, activation, rngs=rngs)


def conv_norm_params(in_features: int, out_features: int, kernel: int, groups: int = 1) -> int:
    return kernel * kernel * (in_features // groups) * out_features + norm_params(out_features)


def depthwise_norm(features: int, kernel: int, strides: int = 1, *, activation=jax.nn.relu,
                   rngs: nnx.Rngs) -> ConvNorm:
    conv = jnn.DepthwiseConv(features, (kernel, kernel), strides=strides, use_bias=False,
                             rngs=rngs)
    return ConvNorm(conv, features, activation, rngs=rngs)


def depthwise_norm_params(features: int, kernel: int) -> int:
    return kernel * kernel * features + norm_params(features)


class SqueezeExcite(nnx.Module):
    """Squeeze-and-excitation (Hu, Shen and Sun 2017, arXiv:1709.01507).

    Global average pool, 1x1 reduce to ``hidden``, ReLU, 1x1 expand, sigmoid gate per channel.
    Parameters: ``2 * C * hidden + hidden + C``.

    Args:
      features: channels ``C`` in and out.
      ratio: hidden width as a share of ``C``.
      rngs: the random keys the parameters are drawn from.
    """

    def __init__(self, features: int, ratio: float = 0.25, *, rngs: nnx.Rngs):
        hidden = self.hidden(features, ratio)
        self.reduce = jnn.Pointwise(features, hidden, rngs=rngs)
        self.expand = jnn.Pointwise(hidden, features, rngs=rngs)

    @staticmethod
    def hidden(features: int, ratio: float) -> int:
        return scaled(features, ratio, name="se_ratio", block="SqueezeExcite")

    @classmethod
    def param_count(cls, features: int, ratio: float) -> int:
        hidden = cls.hidden(features, ratio)
        return 2 * features * hidden + hidden + features

    def __call__(self, x: Array) -> Array:
        s = functional.global_avg_pool(x, keepdims=True)
        return x * jax.nn.sigmoid(self.expand(jax.nn.relu(self.reduce(s))))


def optional_se(features: int, ratio: float, rngs: nnx.Rngs) -> SqueezeExcite | None:
    return SqueezeExcite(features, ratio, rngs=rngs) if ratio else None


def se_params(features: int, ratio: float) -> int:
    return SqueezeExcite.param_count(features, ratio) if ratio else 0


class DropPath(nnx.Module):
    """Stochastic depth (Huang et al. 2016, arXiv:1603.09382), as timm's ``DropPath``: in
    training, each example's residual branch is dropped with probability ``rate`` and kept ones
    are scaled by ``1 / (1 - rate)``; in eval mode, the identity. No parameters."""

    def __init__(self, rate: float, *, rngs: nnx.Rngs):
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate < 1:
            raise ValueError(f"drop_path={rate!r} must be a number in [0, 1)")
        self.rate = float(rate)
        self.dropout = nnx.Dropout(rate, broadcast_dims=(1, 2, 3), rngs=rngs) if rate else None

    def __call__(self, branch: Array) -> Array:
        return branch if self.dropout is None else self.dropout(branch)


def projection(in_features: int, out_features: int, strides: int,
               rngs: nnx.Rngs) -> ConvNorm | None:
    """ResNet's shortcut: identity when shapes agree, else strided 1x1 conv + BN."""
    if strides == 1 and in_features == out_features:
        return None
    return conv_norm(in_features, out_features, 1, strides, activation=None, rngs=rngs)


def projection_params(in_features: int, out_features: int, strides: int) -> int:
    if strides == 1 and in_features == out_features:
        return 0
    return conv_norm_params(in_features, out_features, 1)


def pool(x: Array, kind: str, strides: int) -> Array:
    """3x3 max or average pool with SAME padding (SqueezeNet, ShuffleNet, Inception); the
    average counts padded zeros (Flax's and PyTorch's default)."""
    op = functional.max_pool if kind == "max" else functional.avg_pool
    return op(x, (3, 3), strides, "SAME")
