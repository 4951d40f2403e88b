"""Classifiers assembled from a `ModelSpec` of blocks (Flax NNX), and named presets."""

from jaxconv.models.convnet import ConvNet
from jaxconv.models.presets import BUDGETS, create, layout, presets, spec
from jaxconv.models.spec import ModelSpec, StageSpec

__all__ = ["BUDGETS", "ConvNet", "ModelSpec", "StageSpec", "create", "layout", "presets",
           "spec"]
