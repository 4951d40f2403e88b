"""Flax Linen layers; the same ops as `jaxconv.nnx`, for Linen code."""

from jaxconv.linen.layers import Conv, ConvTranspose, DepthwiseConv, Pointwise, SeparableConv
from jaxconv.linen.pooling import AvgPool, GlobalAvgPool, GlobalMaxPool, MaxPool

__all__ = ["AvgPool", "Conv", "ConvTranspose", "DepthwiseConv", "GlobalAvgPool", "GlobalMaxPool",
           "MaxPool", "Pointwise", "SeparableConv"]
