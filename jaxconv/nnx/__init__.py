"""Flax NNX layers; each owns its parameters and calls `jaxconv.functional`."""

from jaxconv.nnx.compilation import set_compilation
from jaxconv.nnx.layers import Conv, ConvTranspose, DepthwiseConv, Pointwise, SeparableConv
from jaxconv.nnx.norm import BatchNorm
from jaxconv.nnx.pooling import AvgPool, GlobalAvgPool, GlobalMaxPool, MaxPool
from jaxconv.nnx.precision import set_dtypes

__all__ = ["AvgPool", "BatchNorm", "Conv", "ConvTranspose", "DepthwiseConv", "GlobalAvgPool",
           "GlobalMaxPool", "MaxPool", "Pointwise", "SeparableConv", "set_compilation",
           "set_dtypes"]
