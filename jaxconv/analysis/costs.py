"""Per-layer accounting: parameters, textbook MACs and the formulation a layer runs with.

Two FLOP conventions appear in jaxconv's tables and they differ on purpose:
  * **MACs (textbook)**: every tap of every window is one multiply-accumulate, padding included:
    ``output elements x (kernel taps x C_in / groups)``. Papers quote this (often doubled).
  * **XLA FLOPs**: what XLA's ``cost_analysis`` counts: 2 per multiply-add, only taps that land
    on real (not padded) input, plus the element-wise work of norms and activations.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
from flax import nnx

from jaxconv import functional
from jaxconv import nnx as jnn
from jaxconv.nnx import layers

#: The leaf layers the summary reports a row for.
LEAF_TYPES: tuple[type, ...] = (jnn.Conv, jnn.Pointwise, jnn.DepthwiseConv, jnn.SeparableConv,
                                jnn.ConvTranspose, nnx.BatchNorm, nnx.LayerNorm, nnx.Linear)


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """What one leaf layer costs on one input.

    Attributes:
      impl: the formulation its call runs (``F.plan``'s pick; ``"-"`` for layers without one).
      kernel_shape: the kernel's shape, or ``None`` for layers without a kernel.
      macs: textbook multiply-accumulates of the call (every tap of every window).
    """

    impl: str
    kernel_shape: tuple[int, ...] | None
    macs: int


def n_params(module: nnx.Module) -> int:
    """Number of parameters (``nnx.Param`` entries) of a module.

    Args:
      module: any NNX module; abstract parameters (`flax.nnx.eval_shape`) count too.

    Returns:
      The count.
    """
    return sum(p.size for p in jax.tree.leaves(nnx.state(module, nnx.Param)))


def _impl(module) -> str:
    return module.impl if isinstance(module.impl, str) else "xla"


def layer_cost(module: nnx.Module, in_shape: Sequence[int],
               out_shape: Sequence[int]) -> LayerCost:
    """The formulation, kernel shape and textbook MACs of one leaf layer on one input.

    Args:
      module: a jaxconv or Flax NNX leaf layer (a conv, pool, norm or ``Linear``).
      in_shape: the shape of its input, batch included.
      out_shape: the shape of its output.

    Returns:
      The layer's `LayerCost`.
    """
    out_elems = math.prod(out_shape)
    if isinstance(module, jnn.Conv):
        k = tuple(module.kernel.shape)
        plan = functional.plan(in_shape, k, op="conv", impl=_impl(module), **layers.op_args(module))
        return LayerCost(plan.impl, k, out_elems * math.prod(k[:-1]))
    if isinstance(module, jnn.Pointwise):
        k = tuple(module.kernel.shape)
        plan = functional.plan(in_shape, k, op="pointwise", impl=_impl(module),
                               strides=module.strides,
                               feature_group_count=module.feature_group_count)
        return LayerCost(plan.impl, k, out_elems * k[0])
    if isinstance(module, jnn.DepthwiseConv):
        k = tuple(module.kernel.shape)
        plan = functional.plan(in_shape, k, op="depthwise_conv", impl=_impl(module),
                               **layers.op_args(module))
        return LayerCost(plan.impl, k, out_elems * math.prod(k[:-2]))
    if isinstance(module, jnn.SeparableConv):
        dk, pk = tuple(module.depthwise_kernel.shape), tuple(module.pointwise_kernel.shape)
        plan = functional.plan(in_shape, dk, op="depthwise_conv", impl=_impl(module),
                               **layers.op_args(module))
        middle = math.prod(out_shape[:-1]) * dk[-1]
        return LayerCost(f"{plan.impl}+matmul", dk + pk,
                         middle * math.prod(dk[:-2]) + out_elems * pk[0])
    if isinstance(module, jnn.ConvTranspose):
        k = tuple(module.kernel.shape)
        plan = functional.plan(in_shape, k, op="conv_transpose", impl=module.impl,
                               **layers.op_args(module))
        return LayerCost(plan.impl, k, math.prod(in_shape) * math.prod(k[:-2]) * k[-2])
    if isinstance(module, nnx.Linear):
        k = tuple(module.kernel.shape)
        return LayerCost("dot", k, out_elems * k[0])
    return LayerCost("-", None, 0)
