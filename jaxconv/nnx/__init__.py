"""Flax NNX layers; each owns its parameters and calls `jaxconv.functional`."""

from jaxconv.nnx.layers import Conv, ConvTranspose, DepthwiseConv, Pointwise, SeparableConv

__all__ = ["Conv", "ConvTranspose", "DepthwiseConv", "Pointwise", "SeparableConv"]
