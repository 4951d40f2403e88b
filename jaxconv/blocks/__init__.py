"""Bottleneck designs (Flax NNX), built from `jaxconv.nnx` layers; every 1x1 is a `Pointwise`.

One constructor shape for all: ``Block(in_features, out_features, *, strides=1, <options>,
rngs)``. BatchNorm follows ``model.train()`` / ``model.eval()``.
"""

from jaxconv.blocks._parts import SqueezeExcite
from jaxconv.blocks.branches import ConvNeXtBlock, FireModule, InceptionBlock, MlpConv
from jaxconv.blocks.mobile import InvertedResidual, SeparableBlock, ShuffleUnit
from jaxconv.blocks.registry import BLOCKS, create, get, names, options, param_count
from jaxconv.blocks.resnet import BasicBlock, Bottleneck, ResNeXtBlock

__all__ = [
    "BLOCKS", "BasicBlock", "Bottleneck", "ConvNeXtBlock", "FireModule", "InceptionBlock",
    "InvertedResidual", "MlpConv", "ResNeXtBlock", "SeparableBlock", "ShuffleUnit",
    "SqueezeExcite", "create", "get", "names", "options", "param_count",
]
