"""Flax Linen layers; the same ops as `jaxconv.nnx`, for Linen code."""

from jaxconv.linen.layers import Conv, ConvTranspose, DepthwiseConv, Pointwise, SeparableConv

__all__ = ["Conv", "ConvTranspose", "DepthwiseConv", "Pointwise", "SeparableConv"]
