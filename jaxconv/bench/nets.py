"""Two small classification nets, written once per framework, for whole-training-step timing.

``resnet_bottleneck``: a 3x3 stem and six ResNet bottlenecks (1x1 reduce, 3x3, 1x1 expand, each
followed by BatchNorm; projection shortcut where the shape changes). ``mobilenet_v2``: a 3x3 stem
and six MobileNetV2 inverted residuals (1x1 expand x4, depthwise 3x3, 1x1 linear projection;
residual only at equal shape). Both end in global average pooling and a linear classifier.

The JAX nets take the conv class as an argument, so the same code builds the net from
``jaxconv.nnx.Conv`` or from ``flax.nnx.Conv``; the PyTorch twin is the same function: with its
weights copied across (`jaxconv.interop.torch.load`) it gives the same outputs.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv import analysis


@dataclasses.dataclass(frozen=True)
class Stage:
    features: int
    hidden: int          # bottleneck width, or the inverted residual's expanded width
    strides: int


#: name -> (block kind, stem width, stages of two blocks each)
NETS: dict[str, tuple[str, int, tuple[Stage, ...]]] = {
    "resnet_bottleneck": ("bottleneck", 32, (Stage(64, 16, 1), Stage(128, 32, 2),
                                             Stage(256, 48, 2))),
    "mobilenet_v2": ("inverted", 16, (Stage(24, 64, 1), Stage(48, 96, 2), Stage(96, 192, 2))),
}


def _blocks(name: str):
    kind, stem, stages = NETS[name]
    width = stem
    for stage in stages:
        for index in range(2):
            strides = stage.strides if index == 0 else 1
            yield kind, width, stage, strides
            width = stage.features


class _ConvBN(nnx.Module):
    def __init__(self, conv_cls, cin, cout, kernel, strides=1, groups=1, *, norm_cls, rngs):
        # PyTorch's kernel // 2 on every side (SAME would pad a stride-2 3x3 only below)
        self.conv = conv_cls(cin, cout, (kernel, kernel), strides, padding=kernel // 2,
                             feature_group_count=groups, use_bias=False, rngs=rngs)
        self.norm = norm_cls(cout, momentum=0.9, rngs=rngs)

    def __call__(self, x, relu=True):
        y = self.norm(self.conv(x))
        return jax.nn.relu(y) if relu else y


class _Block(nnx.Module):
    def __init__(self, conv_cls, kind, cin, stage: Stage, strides, *, norm_cls, rngs):
        h, cout = stage.hidden, stage.features
        conv_bn = functools.partial(_ConvBN, conv_cls, norm_cls=norm_cls, rngs=rngs)
        if kind == "bottleneck":
            self.layers = nnx.List([conv_bn(cin, h, 1), conv_bn(h, h, 3, strides),
                                    conv_bn(h, cout, 1)])
            self.project = conv_bn(cin, cout, 1, strides) if (cin, strides) != (cout, 1) \
                else None
            self.residual = True
        else:
            self.layers = nnx.List([conv_bn(cin, h, 1), conv_bn(h, h, 3, strides, groups=h),
                                    conv_bn(h, cout, 1)])
            self.project = None
            self.residual = (cin, strides) == (cout, 1)
        self.kind = kind

    def __call__(self, x):
        y = x
        for index, layer in enumerate(self.layers):
            y = layer(y, relu=index < len(self.layers) - 1)
        if self.kind == "bottleneck":
            shortcut = self.project(x, relu=False) if self.project is not None else x
            return jax.nn.relu(y + shortcut)
        return y + x if self.residual else y


class Net(nnx.Module):
    """One of `NETS` in Flax NNX, its convolutions built by ``conv_cls`` and its BatchNorms by
    ``norm_cls`` (``flax.nnx.BatchNorm`` or `jaxconv.nnx.BatchNorm`)."""

    def __init__(self, name: str, conv_cls, *, norm_cls=nnx.BatchNorm, in_features=1,
                 num_classes=10, rngs: nnx.Rngs):
        stem = NETS[name][1]
        self.stem = _ConvBN(conv_cls, in_features, stem, 3, norm_cls=norm_cls, rngs=rngs)
        self.blocks = nnx.List([_Block(conv_cls, kind, cin, stage, strides, norm_cls=norm_cls,
                                       rngs=rngs)
                                for kind, cin, stage, strides in _blocks(name)])
        self.head = nnx.Linear(NETS[name][2][-1].features, num_classes, rngs=rngs)

    def __call__(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(jnp.mean(x, axis=(1, 2)))


def torch_net(name: str, *, in_features=1, num_classes=10):
    """The PyTorch twin of `Net` (``torch`` is imported here, only when asked for)."""
    import torch
    from torch import nn

    def conv_bn(cin, cout, kernel, strides=1, groups=1):
        return nn.Sequential(nn.Conv2d(cin, cout, kernel, strides, kernel // 2, groups=groups,
                                       bias=False), nn.BatchNorm2d(cout, momentum=0.1))

    class Block(nn.Module):
        def __init__(self, kind, cin, stage: Stage, strides):
            super().__init__()
            h, cout = stage.hidden, stage.features
            groups = h if kind == "inverted" else 1
            self.layers = nn.ModuleList([conv_bn(cin, h, 1), conv_bn(h, h, 3, strides, groups),
                                         conv_bn(h, cout, 1)])
            self.kind = kind
            self.project = conv_bn(cin, cout, 1, strides) \
                if kind == "bottleneck" and (cin, strides) != (cout, 1) else None
            self.residual = kind == "bottleneck" or (cin, strides) == (cout, 1)

        def forward(self, x):
            y = x
            for index, layer in enumerate(self.layers):
                y = layer(y)
                if index < len(self.layers) - 1:
                    y = torch.relu(y)
            if self.kind == "bottleneck":
                return torch.relu(y + (self.project(x) if self.project is not None else x))
            return y + x if self.residual else y

    class TorchNet(nn.Module):
        def __init__(self):
            super().__init__()
            stem = NETS[name][1]
            self.stem = conv_bn(in_features, stem, 3)
            self.blocks = nn.Sequential(*[Block(kind, cin, stage, strides)
                                          for kind, cin, stage, strides in _blocks(name)])
            self.head = nn.Linear(NETS[name][2][-1].features, num_classes)

        def forward(self, x):
            x = self.blocks(torch.relu(self.stem(x)))
            return self.head(x.mean(dim=(2, 3)))

    return TorchNet()


def param_count(model) -> int:
    """Trainable parameters of a `Net` or of its PyTorch twin."""
    if isinstance(model, nnx.Module):
        return analysis.n_params(model)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
