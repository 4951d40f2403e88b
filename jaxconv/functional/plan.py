"""`plan`: which formulation ``impl="auto"`` would compute an op with, and why."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp

from jaxconv.functional import _checks, policy
from jaxconv.functional.conv import pointwise_kernel_shape, prepare
from jaxconv.functional.depthwise import _depth_multiplier
from jaxconv.functional.formulations import CONV
from jaxconv.functional.transpose import TRANSPOSE, TRANSPOSE_POLICIES, prepare_transpose

OPS = ("conv", "pointwise", "depthwise_conv", "conv_transpose")


def _shape(value: Any, name: str) -> tuple[int, ...]:
    shape = getattr(value, "shape", value)
    dims = [_checks.integer(d) for d in shape] if isinstance(shape, Sequence) else [None]
    if any(d is None for d in dims):
        raise TypeError(f"plan: {name}={value!r} must be an array or a shape tuple")
    return tuple(dims)


def plan(x: Any, kernel: Any, *, op: str = "conv", impl: str = "auto",
         backend: str | None = None, **kwargs: Any) -> policy.Plan:
    """Says which formulation ``op`` would use for these shapes and arguments, and why.

    Args:
      x: the input, or its shape.
      kernel: the kernel, or its shape, in ``op``'s layout.
      op: ``"conv"``, ``"pointwise"``, ``"depthwise_conv"`` or ``"conv_transpose"``.
      impl: what the call would pass as ``impl`` (``"autotune"`` measures, see
        `jaxconv.functional.autotune`).
      backend: ``"cpu"``, ``"gpu"`` or ``"tpu"``; the default backend when ``None``.
      **kwargs: the op's keyword arguments (``strides``, ``padding``, ...).

    Returns:
      A `jaxconv.functional.policy.Plan`; ``print`` it for a readable account.

    >>> print(plan((8, 8, 8, 32), (1, 1, 32, 64)).impl)
    matmul
    """
    x_shape, kernel_shape = _shape(x, "x"), _shape(kernel, "kernel")
    dtype = getattr(x, "dtype", jnp.float32)
    if op == "conv_transpose":
        spec = prepare_transpose(x_shape, kernel_shape, **kwargs)
        return policy.choose(op, TRANSPOSE, TRANSPOSE_POLICIES, spec, impl, backend, dtype,
                             kernel_shape)[1]
    if op == "pointwise":
        kernel_shape = pointwise_kernel_shape(x_shape, kernel_shape, kwargs.get("strides", 1))
        kwargs = {"padding": "VALID", **kwargs}
    elif op == "depthwise_conv":
        _depth_multiplier(x_shape, kernel_shape, kwargs.pop("depth_multiplier", None), op)
        kwargs = {**kwargs, "feature_group_count": x_shape[-1]}
    elif op != "conv":
        raise ValueError(f"plan: op={op!r} is not one of {', '.join(map(repr, OPS))}")
    spec = prepare(x_shape, kernel_shape, op=op, **kwargs).spec
    return policy.choose(op, CONV, policy.CONV_POLICIES, spec, impl, backend, dtype)[1]
