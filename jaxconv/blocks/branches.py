"""Blocks that lean on 1x1 convolutions for width: SqueezeNet fire, Inception, NIN mlpconv,
and ConvNeXt.

Notation as in `jaxconv.blocks.resnet`: ``BN(c) = 2c``; ``CN(a, b, k) = k^2 a b + BN(b)`` a conv
without bias followed by BatchNorm.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv import nnx as jnn
from jaxconv.blocks import _parts as parts
from jaxconv.typing import Array


class FireModule(nnx.Module):
    """SqueezeNet fire module (Iandola et al. 2016, arXiv:1602.07360).

    1x1 squeeze to ``s = round(C_out * squeeze_ratio)`` → BN → ReLU → concat(1x1 to
    ``e1 = C_out // 2``, 3x3 to ``e3 = C_out - e1``) → BN → ReLU, with the paper's simple
    bypass when ``C_in == C_out``. A stride pools first (3x3 max pool, as SqueezeNet
    downsamples between fire modules). BatchNorm after every conv is a modern addition.

    Parameters: ``CN(C_in, s, 1) + CN(s, e1, 1) + CN(s, e3, 3)``.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      strides: stride of the block's spatial conv (2 halves the height and width).
      squeeze_ratio: width of the squeeze 1x1 as a share of ``C_out``.
      bypass: add the input to the output when ``C_in == C_out`` (SqueezeNet's simple bypass).
      rngs: the random keys the parameters are drawn from.
    """

    def __init__(self, in_features: int, out_features: int, *, strides: int = 1,
                 squeeze_ratio: float = 0.125, bypass: bool = True, rngs: nnx.Rngs):
        parts.check_positive("fire", in_features=in_features, out_features=out_features,
                             strides=strides)
        s, e1, e3 = self.widths(out_features, squeeze_ratio)
        self.strides = strides
        self.squeeze = parts.conv_norm(in_features, s, 1, rngs=rngs)
        self.expand1 = parts.conv_norm(s, e1, 1, activation=None, rngs=rngs)
        self.expand3 = parts.conv_norm(s, e3, 3, activation=None, rngs=rngs)
        self.bypass = bypass and in_features == out_features

    @staticmethod
    def widths(out_features: int, squeeze_ratio: float) -> tuple[int, int, int]:
        if out_features < 2:
            raise ValueError(f"fire: out_features={out_features} must be >= 2 (two expands)")
        e1 = out_features // 2
        return parts.scaled(out_features, squeeze_ratio, name="squeeze_ratio", block="fire"), e1, \
            out_features - e1

    @classmethod
    def param_count(cls, in_features: int, out_features: int, *, strides: int = 1,
                    squeeze_ratio: float = 0.125, bypass: bool = True) -> int:
        s, e1, e3 = cls.widths(out_features, squeeze_ratio)
        return (parts.conv_norm_params(in_features, s, 1) + parts.conv_norm_params(s, e1, 1)
                + parts.conv_norm_params(s, e3, 3))

    def __call__(self, x: Array) -> Array:
        if self.strides != 1:
            x = parts.pool(x, "max", self.strides)
        s = self.squeeze(x)
        y = jax.nn.relu(jnp.concatenate([self.expand1(s), self.expand3(s)], axis=-1))
        return x + y if self.bypass else y


class InceptionBlock(nnx.Module):
    """Inception module with 1x1 reductions (Szegedy et al. 2014, arXiv:1409.4842).

    Four branches concatenated: 1x1 to ``b1``; 1x1 to ``r3`` → 3x3 to ``b3``; 1x1 to ``r5`` →
    5x5 to ``b5``; 3x3 max pool → 1x1 to ``bp``, each conv followed by BN and ReLU. Widths
    follow GoogLeNet's inception (3a): ``b1 = C_out / 4``, ``b5 = bp = C_out / 8``,
    ``b3`` the rest, ``r3 = 3 b3 / 4``, ``r5 = b5 / 2``. A stride pools first (3x3 max pool).

    Parameters: ``CN(C_in, b1, 1) + CN(C_in, r3, 1) + CN(r3, b3, 3) + CN(C_in, r5, 1)
    + CN(r5, b5, 5) + CN(C_in, bp, 1)``.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      strides: stride of the block's spatial conv (2 halves the height and width).
      rngs: the random keys the parameters are drawn from.
    """

    def __init__(self, in_features: int, out_features: int, *, strides: int = 1,
                 rngs: nnx.Rngs):
        parts.check_positive("inception", in_features=in_features, out_features=out_features,
                             strides=strides)
        b1, r3, b3, r5, b5, bp = self.widths(out_features)
        self.strides = strides
        self.branch1 = parts.conv_norm(in_features, b1, 1, rngs=rngs)
        self.reduce3 = parts.conv_norm(in_features, r3, 1, rngs=rngs)
        self.branch3 = parts.conv_norm(r3, b3, 3, rngs=rngs)
        self.reduce5 = parts.conv_norm(in_features, r5, 1, rngs=rngs)
        self.branch5 = parts.conv_norm(r5, b5, 5, rngs=rngs)
        self.branch_pool = parts.conv_norm(in_features, bp, 1, rngs=rngs)

    @staticmethod
    def widths(out_features: int) -> tuple[int, ...]:
        if out_features < 8:
            raise ValueError(f"inception: out_features={out_features} must be >= 8 (four "
                             "branches)")
        b1, b5 = out_features // 4, out_features // 8
        b3 = out_features - b1 - 2 * b5
        return b1, max(1, 3 * b3 // 4), b3, max(1, b5 // 2), b5, b5

    @classmethod
    def param_count(cls, in_features: int, out_features: int, *, strides: int = 1) -> int:
        b1, r3, b3, r5, b5, bp = cls.widths(out_features)
        cn = parts.conv_norm_params
        return (cn(in_features, b1, 1) + cn(in_features, r3, 1) + cn(r3, b3, 3)
                + cn(in_features, r5, 1) + cn(r5, b5, 5) + cn(in_features, bp, 1))

    def __call__(self, x: Array) -> Array:
        if self.strides != 1:
            x = parts.pool(x, "max", self.strides)
        return jnp.concatenate([
            self.branch1(x), self.branch3(self.reduce3(x)), self.branch5(self.reduce5(x)),
            self.branch_pool(parts.pool(x, "max", 1))], axis=-1)


class MlpConv(nnx.Module):
    """Network-in-Network mlpconv layer (Lin, Chen and Yan 2013, arXiv:1312.4400).

    kxk conv (stride) → BN → ReLU → 1x1 → BN → ReLU → 1x1 → BN → ReLU: a small MLP over
    channels slid over every position.

    Parameters: ``CN(C_in, C_out, k) + 2 CN(C_out, C_out, 1)``.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      strides: stride of the block's spatial conv (2 halves the height and width).
      kernel_size: side of the first (spatial) conv.
      rngs: the random keys the parameters are drawn from.
    """

    def __init__(self, in_features: int, out_features: int, *, strides: int = 1,
                 kernel_size: int = 3, rngs: nnx.Rngs):
        parts.check_positive("nin", in_features=in_features, out_features=out_features,
                             strides=strides, kernel_size=kernel_size)
        self.conv = parts.conv_norm(in_features, out_features, kernel_size, strides, rngs=rngs)
        self.mlp1 = parts.conv_norm(out_features, out_features, 1, rngs=rngs)
        self.mlp2 = parts.conv_norm(out_features, out_features, 1, rngs=rngs)

    @staticmethod
    def param_count(in_features: int, out_features: int, *, strides: int = 1,
                    kernel_size: int = 3) -> int:
        return (parts.conv_norm_params(in_features, out_features, kernel_size)
                + 2 * parts.conv_norm_params(out_features, out_features, 1))

    def __call__(self, x: Array) -> Array:
        return self.mlp2(self.mlp1(self.conv(x)))


class ConvNeXtBlock(nnx.Module):
    """ConvNeXt block (Liu et al. 2022, arXiv:2201.03545).

    Depthwise 7x7 → LayerNorm → 1x1 expand x4 → GELU → 1x1 → layer scale → [drop path] → +
    input. GELU is exact, as in the reference (``gelu_approximate=True``: the tanh form). When the
    stride is not 1 or ``C_in != C_out``, ConvNeXt's downsampling layer comes first: LayerNorm
    → ``s x s`` conv with stride ``s`` (a 1x1 when ``s = 1``), with bias.

    Parameters: ``[2 C_in + s^2 C_in C_out + C_out] + 49 C + C + 2 C + 4 C^2 + 4 C + 4 C^2 + C
    + C`` with ``C = C_out``.

    Args:
      in_features: input channels ``C_in``.
      out_features: output channels ``C_out``.
      strides: stride of the block's spatial conv (2 halves the height and width).
      kernel_size: side of the depthwise conv.
      expansion: width of the inner 1x1 as a multiple of ``C_out``.
      layer_scale: initial value of the per-channel scale of the branch (ConvNeXt's gamma).
      drop_path: stochastic-depth rate of the residual branch in training (0: off).
      gelu_approximate: the tanh form of GELU instead of the exact one.
      rngs: the random keys the parameters are drawn from.
    """

    def __init__(self, in_features: int, out_features: int, *, strides: int = 1,
                 kernel_size: int = 7, expansion: int = 4, layer_scale: float = 1e-6,
                 drop_path: float = 0.0, gelu_approximate: bool = False, rngs: nnx.Rngs):
        parts.check_positive("convnext", in_features=in_features, out_features=out_features,
                             strides=strides, kernel_size=kernel_size, expansion=expansion)
        c = out_features
        if strides != 1 or in_features != out_features:
            self.down_norm = parts.LayerNorm(in_features, epsilon=1e-6, rngs=rngs)
            self.down = (jnn.Conv(in_features, c, (strides, strides), strides=strides, rngs=rngs)
                         if strides != 1 else jnn.Pointwise(in_features, c, rngs=rngs))
        else:
            self.down_norm, self.down = nnx.data(None), nnx.data(None)
        self.depthwise = jnn.DepthwiseConv(c, (kernel_size, kernel_size), rngs=rngs)
        self.norm = parts.LayerNorm(c, epsilon=1e-6, rngs=rngs)
        self.expand = jnn.Pointwise(c, expansion * c, rngs=rngs)
        self.project = jnn.Pointwise(expansion * c, c, rngs=rngs)
        self.gamma = nnx.Param(jnp.full((c,), layer_scale, jnp.float32))
        self.drop_path = parts.DropPath(drop_path, rngs=rngs)
        self.gelu_approximate = bool(gelu_approximate)
        # The layer scale is this block's own parameter: it follows `set_dtypes` like a layer's.
        self.dtype, self.param_dtype = None, jnp.float32

    @staticmethod
    def param_count(in_features: int, out_features: int, *, strides: int = 1,
                    kernel_size: int = 7, expansion: int = 4, layer_scale: float = 1e-6) -> int:
        c, h = out_features, expansion * out_features
        down = 0
        if strides != 1 or in_features != out_features:
            down = 2 * in_features + strides * strides * in_features * c + c
        return down + kernel_size ** 2 * c + c + 2 * c + c * h + h + h * c + c + c

    def __call__(self, x: Array) -> Array:
        if self.down is not None:
            x = self.down(self.down_norm(x))
        hidden = self.expand(self.norm(self.depthwise(x)))
        y = self.project(jax.nn.gelu(hidden, approximate=self.gelu_approximate))
        gamma = self.gamma[...].astype(y.dtype)
        return x + self.drop_path(gamma.reshape((1,) * (y.ndim - 1) + gamma.shape) * y)
