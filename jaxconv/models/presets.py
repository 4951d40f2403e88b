"""Named presets: one per block family and budget, for 28x28 and 32x32 images.

Every preset has the same layout, so a study compares designs at equal cost: a 3x3 stem of
width ``w`` and stride 2, then three stages of two blocks at widths ``w, 2w, 4w`` with strides
1, 2, 2 (28 → 14 → 14 → 7 → 4, or 32 → 16 → 16 → 8 → 4), global average pooling and a linear
classifier. The stride-2 stem keeps a training epoch of 60,000 28x28 images within minutes on
two CPU cores. The
width ``w`` of each family is the multiple of 4 that brings the 10-class, 1-channel model
closest to the budget (0.1M, 0.3M or 1M parameters; all within 11%).
"""

from __future__ import annotations

from typing import Any

from flax import nnx

from jaxconv.blocks import registry
from jaxconv.models.convnet import ConvNet
from jaxconv.models.spec import ModelSpec, StageSpec

BUDGETS = {"0.1m": 100_000, "0.3m": 300_000, "1m": 1_000_000}
"""Preset budget suffix -> the parameter count its widths aim at."""

#: Stage-one width per family and budget (0.1M, 0.3M, 1M).
WIDTHS: dict[str, tuple[int, int, int]] = {
    "basic": (12, 20, 40),
    "bottleneck": (44, 76, 136),
    "resnext": (40, 72, 128),
    "separable": (52, 92, 172),
    "inverted_residual": (16, 28, 52),
    "fire": (56, 100, 180),
    "shuffle": (104, 188, 348),
    "convnext": (16, 28, 52),
    "inception": (32, 52, 96),
    "nin": (16, 28, 52),
}
DEPTH = 2


def layout(block: str, width: int, *, depth: int = DEPTH, **options) -> ModelSpec:
    """The presets' three-stage layout for any block and width.

    Args:
      block: a `jaxconv.blocks.names` name.
      width: channels of the stem and the first stage; the later stages have ``2 * width`` and
        ``4 * width``.
      depth: blocks per stage.
      **options: the block's design options, the same for every block.

    Returns:
      The spec, with a stride-2 stem.
    """
    stages = tuple(StageSpec(block, width * 2 ** i, depth, 1 if i == 0 else 2, dict(options))
                   for i in range(3))
    return ModelSpec(stages=stages, stem_width=width, stem_strides=2)


def presets() -> list[str]:
    """Every preset name, ``<block>-<budget>``, e.g. ``bottleneck-0.3m``.

    Returns:
      The names, family by family, budgets in increasing order.
    """
    return [f"{block}-{budget}" for block in WIDTHS for budget in BUDGETS]


def spec(preset: str) -> ModelSpec:
    """The `ModelSpec` of a preset.

    Args:
      preset: a `presets` name; an unknown one is a ``ValueError`` naming the closest.

    Returns:
      The preset's architecture.
    """
    block, _, budget = preset.rpartition("-")
    if block not in WIDTHS or budget not in BUDGETS:
        raise registry._unknown("preset", preset, presets())
    return layout(block, WIDTHS[block][list(BUDGETS).index(budget)])


def create(preset: str, *, num_classes: int, in_features: int, rngs: nnx.Rngs,
           dtype: Any = None, param_dtype: Any = None) -> ConvNet:
    """Builds a preset; ``dtype`` and ``param_dtype`` as in `ConvNet`.

    >>> model = nnx.eval_shape(lambda: create("bottleneck-0.1m", num_classes=10, in_features=1,
    ...                                       rngs=nnx.Rngs(0)))
    >>> len(model.blocks)
    6

    Args:
      preset: a `presets` name.
      num_classes: classifier outputs.
      in_features: input image channels.
      rngs: the random keys the parameters are drawn from.
      dtype: the compute dtype of every layer (``None``: float32).
      param_dtype: the parameter dtype of every layer (``None``: float32).

    Returns:
      The classifier.
    """
    return ConvNet(spec(preset), num_classes=num_classes, in_features=in_features, rngs=rngs,
                   dtype=dtype, param_dtype=param_dtype)
