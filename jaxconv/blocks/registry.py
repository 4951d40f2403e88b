"""Blocks by name: `names`, `get` and `create`, keyed by the names in the design doc."""

from __future__ import annotations

import inspect
from typing import Any

from flax import nnx

from jaxconv import nnx as jnn
from jaxconv._hints import did_you_mean
from jaxconv.blocks.branches import ConvNeXtBlock, FireModule, InceptionBlock, MlpConv
from jaxconv.blocks.mobile import InvertedResidual, SeparableBlock, ShuffleUnit
from jaxconv.blocks.resnet import BasicBlock, Bottleneck, ResNeXtBlock

BLOCKS: dict[str, type[nnx.Module]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "resnext": ResNeXtBlock,
    "separable": SeparableBlock,
    "inverted_residual": InvertedResidual,
    "fire": FireModule,
    "shuffle": ShuffleUnit,
    "convnext": ConvNeXtBlock,
    "inception": InceptionBlock,
    "nin": MlpConv,
}
"""Registry name -> block class, in the order of the design doc."""


#: Block options that change no parameter (the parameter formulas do not take them).
PARAMETER_FREE = ("drop_path", "gelu_approximate")


def names() -> list[str]:
    """The registered block names.

    Returns:
      The names, in registry order.
    """
    return list(BLOCKS)


def _unknown(kind: str, value: str, valid: list[str], where: str = "") -> ValueError:
    hint = did_you_mean(value, valid)
    return ValueError(f"{where}{kind} {value!r} does not exist{hint}; valid: {', '.join(valid)}")


def get(name: str) -> type[nnx.Module]:
    """The block class registered as ``name``.

    Args:
      name: a registered block name; an unknown one is a ``ValueError`` naming the closest.

    Returns:
      The class.
    """
    if name not in BLOCKS:
        raise _unknown("block", name, names())
    return BLOCKS[name]


def options(name: str) -> dict[str, Any]:
    """A block's design options and their defaults.

    Args:
      name: a registered block name.

    Returns:
      Option name -> default, for the keyword-only options of the block's constructor.
    """
    params = inspect.signature(get(name).__init__).parameters
    return {p.name: p.default for p in params.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in ("strides", "rngs")}


def check_options(name: str, given: dict[str, Any], where: str = "") -> None:
    valid = list(options(name))
    for key in given:
        if key not in valid:
            raise _unknown(f"option of block {name!r}:", key, valid, where)


def create(name: str, in_features: int, out_features: int, *, strides: int = 1,
           rngs: nnx.Rngs, dtype: Any = None, param_dtype: Any = None,
           **block_options: Any) -> nnx.Module:
    """Builds the block registered as ``name``.

    ``dtype`` (compute) and ``param_dtype`` (parameters) apply to every layer of the block, as
    Flax layers take them (`jaxconv.nnx.set_dtypes`); ``None`` keeps float32.

    >>> block = create("bottleneck", 64, 128, strides=2, rngs=nnx.Rngs(0), ratio=0.5)
    >>> type(block).__name__
    'Bottleneck'

    Args:
      name: a registered block name (`names`).
      in_features: input channels.
      out_features: output channels.
      strides: stride of the block's spatial conv.
      rngs: the random keys the parameters are drawn from.
      dtype: the compute dtype of every layer.
      param_dtype: the parameter dtype of every layer.
      **block_options: the block's design options (`options`); an unknown one is an error.

    Returns:
      The block, an ``nnx.Module``.
    """
    check_options(name, block_options)
    block = get(name)(in_features, out_features, strides=strides, rngs=rngs, **block_options)
    return jnn.set_dtypes(block, dtype, param_dtype)


def param_count(name: str, in_features: int, out_features: int, *, strides: int = 1,
                **block_options: Any) -> int:
    """The parameter count the block's documented formula gives.

    Args:
      name: a registered block name.
      in_features: input channels.
      out_features: output channels.
      strides: stride of the block's spatial conv.
      **block_options: the block's design options.

    Returns:
      The number of parameters the block has.
    """
    check_options(name, block_options)
    counted = {k: v for k, v in block_options.items() if k not in PARAMETER_FREE}
    return get(name).param_count(in_features, out_features, strides=strides, **counted)
