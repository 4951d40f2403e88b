"""The N-D convolution `conv` and its 1x1 channel-mixing form `pointwise`.

Both resolve their arguments once (`prepare`), on static shapes, then hand a `ConvSpec` to the
formulation ``impl`` names. Depthwise, separable and transposed convolutions live in their own
modules and reuse `prepare`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax

from jaxconv.functional import _checks, policy
from jaxconv.functional import padding as padlib
from jaxconv.functional.formulations import CONV, Compilation, ConvSpec
from jaxconv.functional.formulations.spec import DEFAULT_COMPILATION
from jaxconv.typing import Array, ImplLike, IntOrSeq, PaddingLike, Pads, Shape


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A validated forward conv: the spec, plus the non-zero fill applied before it."""

    spec: ConvSpec
    fill: str
    fill_pads: Pads


def prepare(
    x_shape: Sequence[int], kernel_shape: Sequence[int], *, op: str, strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME", padding_mode: str = "zeros", input_dilation: IntOrSeq = 1,
    kernel_dilation: IntOrSeq = 1, feature_group_count: int = 1, precision: Any = None,
    preferred_element_type: Any = None, compilation: Compilation | None = None,
) -> Prepared:
    """Validates a forward conv on static shapes and resolves it into a `Prepared`."""
    x_shape, kernel_shape, rank = _checks.shapes(x_shape, kernel_shape, op=op)
    strides = _checks.int_tuple("strides", strides, rank)
    input_dilation = _checks.int_tuple("input_dilation", input_dilation, rank)
    kernel_dilation = _checks.int_tuple("kernel_dilation", kernel_dilation, rank)
    groups = _checks.positive_int("feature_group_count", feature_group_count)
    *_, in_per_group, out_channels = kernel_shape
    batch, spatial, channels = _checks.split_input(x_shape, rank)
    _checks.groups_divide_channels(op, groups, channels)
    if out_channels % groups:
        raise ValueError(f"{op}: feature_group_count={groups} does not divide the kernel's "
                         f"{out_channels} output channels (kernel shape {kernel_shape})")
    if channels != in_per_group * groups:
        raise ValueError(
            f"{op}: input has {channels} channels but the kernel expects {in_per_group * groups} "
            f"(kernel shape {kernel_shape}, feature_group_count={groups})")
    dilated = tuple((n - 1) * d + 1 for n, d in zip(spatial, input_dilation))
    window = tuple((k - 1) * d + 1 for k, d in zip(kernel_shape[:-2], kernel_dilation))
    pads, fill = padlib.resolve(padding, padding_mode, in_spatial=dilated, window=window,
                                strides=strides)
    if fill != "zeros" and any(d != 1 for d in input_dilation):
        raise ValueError(f"{op}: padding_mode={fill!r} with input_dilation={input_dilation} is "
                         "ambiguous; fill modes other than 'zeros' need input_dilation=1")
    if fill == "zeros":
        spec_input, spec_pads, fill_pads = (batch, *spatial, channels), pads, ((0, 0),) * rank
    else:
        padded = tuple(n + lo + hi for n, (lo, hi) in zip(spatial, pads))
        spec_input, spec_pads, fill_pads = (batch, *padded, channels), ((0, 0),) * rank, pads
    spec = ConvSpec(spec_input, kernel_shape, strides, spec_pads, input_dilation,
                    kernel_dilation, groups, precision, preferred_element_type,
                    checked_compilation(compilation))
    _checks.nonempty_output(op, spec.output_shape[1:-1],
                            f"the input's spatial shape {spatial} padded by {pads} is smaller "
                            f"than the dilated kernel {window}")
    return Prepared(spec, fill, fill_pads)


def checked_compilation(compilation: Compilation | None) -> Compilation:
    """``compilation``, or the default one for ``None``."""
    if compilation is None:
        return DEFAULT_COMPILATION
    if not isinstance(compilation, Compilation):
        raise TypeError(f"compilation={compilation!r} must be a "
                        "jaxconv.functional.Compilation or None")
    return compilation


def run(prepared: Prepared, x: Array, kernel: Array, bias: Array | None, *, op: str,
        impl: ImplLike) -> Array:
    """Computes a prepared forward conv with the formulation ``impl`` selects."""
    spec = prepared.spec
    _checks.same_dtype(op, x=x, kernel=kernel, bias=bias)
    _checks.bias_shape(op, bias, spec.out_channels)
    compute, _ = policy.choose(op, CONV, policy.CONV_POLICIES, spec, impl, dtype=x.dtype)
    xb, restore = _checks.batch_input(x, spec.rank)
    xb = padlib.apply_fill(xb, prepared.fill_pads, prepared.fill)
    return restore(_checks.add_bias(compute(xb, kernel, spec), bias))


def conv(
    x: Array, kernel: Array, bias: Array | None = None, *, strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME", padding_mode: str = "zeros", input_dilation: IntOrSeq = 1,
    kernel_dilation: IntOrSeq = 1, feature_group_count: int = 1, precision: Any = None,
    preferred_element_type: Any = None, impl: ImplLike = "auto",
    compilation: Compilation | None = None,
) -> Array:
    """N-D convolution (cross-correlation, as in every deep-learning framework).

    The spatial rank comes from the kernel; ints broadcast to every spatial dim.

    Args:
      x: ``(*batch, *spatial, C_in)``; no batch axis and several batch axes both work.
      kernel: ``(*kernel_spatial, C_in // feature_group_count, C_out)`` (HWIO, Flax's layout).
      bias: ``(C_out,)`` or ``None``.
      strides: output stride per spatial dim.
      padding: amounts (`jaxconv.functional.padding`): ``"SAME"``, ``"VALID"``, ``"CAUSAL"``,
        ``"CIRCULAR"``, ``"REFLECT"``, ``"REPLICATE"``, an int, one int or pair per dim.
      padding_mode: fill of the padded positions: ``"zeros"``, ``"circular"``, ``"reflect"``,
        ``"replicate"``.
      input_dilation: gaps between input positions (``lhs_dilation``); SAME counts the dilated
        input's size.
      kernel_dilation: gaps between kernel taps (atrous convolution).
      feature_group_count: groups; each maps ``C_in / groups`` inputs to ``C_out / groups``
        outputs.
      precision, preferred_element_type: passed to XLA.
      impl: ``"auto"``, a formulation name (``"xla"``, ``"matmul"``), or a callable with
        `jax.lax.conv_general_dilated`'s signature. `plan` says what ``"auto"`` picks.
      compilation: how the program this call is traced into is compiled
        (`jaxconv.functional.Compilation`: compiler options, batch shards); ``None`` for a
        plain ``jax.jit``.

    Returns:
      ``(*batch, *out_spatial, C_out)``.

    >>> import jax.numpy as jnp
    >>> conv(jnp.ones((2, 64, 64, 3)), jnp.ones((3, 3, 3, 32)), strides=2).shape
    (2, 32, 32, 32)
    """
    with jax.named_scope("jaxconv.conv"):
        prepared = prepare(
            x.shape, kernel.shape, op="conv", strides=strides, padding=padding,
            padding_mode=padding_mode, input_dilation=input_dilation,
            kernel_dilation=kernel_dilation, feature_group_count=feature_group_count,
            precision=precision, preferred_element_type=preferred_element_type,
            compilation=compilation)
        return run(prepared, x, kernel, bias, op="conv", impl=impl)


def pointwise_kernel_shape(x_shape: Sequence[int], kernel_shape: Sequence[int],
                           strides: IntOrSeq) -> Shape:
    """The ``1x..x1`` HWIO shape of a pointwise kernel given as ``(C_in, C_out)``.

    A ``(C_in, C_out)`` matrix has no spatial rank: with ``strides=1`` every position is mixed
    alike, so the rank is taken from the input (one batch axis); a stride other than 1 must come
    as one int per spatial dim, which fixes the rank.
    """
    kernel_shape = tuple(kernel_shape)
    if len(kernel_shape) != 2:
        return kernel_shape
    if isinstance(strides, Sequence) and not isinstance(strides, str):
        rank = len(strides)
    elif strides in (1, None):
        rank = max(len(x_shape) - 2, 1)
    else:
        raise ValueError(
            f"pointwise: strides={strides!r} with a (C_in, C_out) kernel {kernel_shape} does not "
            "say which dims are spatial; pass one stride per spatial dim, e.g. strides=(2, 2), or "
            "a 1x..x1 kernel")
    return (1,) * rank + kernel_shape


def pointwise(x: Array, kernel: Array, bias: Array | None = None, *, strides: IntOrSeq = 1,
              feature_group_count: int = 1, precision: Any = None,
              impl: ImplLike = "matmul", compilation: Compilation | None = None) -> Array:
    """1x1 convolution: a linear map of the channels at every (strided) position.

    Each output pixel is ``kernel.T @ x[pixel] + bias``, i.e. a Dense layer applied at every
    position; with ``C_out < C_in`` it is a projection that keeps at most ``C_out`` directions
    of the ``C_in``-dimensional input at each pixel.

    Args:
      x: ``(*batch, *spatial, C_in)``.
      kernel: ``(C_in // groups, C_out)`` (a Dense kernel) or ``(1, ..., 1, C_in // groups,
        C_out)`` (a 1x1 conv's).
      bias: ``(C_out,)`` or ``None``.
      strides: subsampling per spatial dim (one int per dim for a ``(C_in, C_out)`` kernel).
      feature_group_count: groups (ShuffleNet's grouped 1x1); each group of ``C_in / groups``
        channels gets its own ``(C_in / groups, C_out / groups)`` matrix.
      precision: passed to XLA.
      impl: ``"matmul"`` (default: ``dot_general``), ``"xla"`` or ``"auto"``.
      compilation: as in `conv`.

    Returns:
      ``(*batch, *out_spatial, C_out)`` with ``out_spatial = ceil(spatial / strides)`` (no
      padding: a 1x1 window needs none).

    Raises:
      ValueError: the kernel is not 1x..x1; an int stride other than 1 comes with a
        ``(C_in, C_out)`` kernel; the channels do not match the kernel and
        ``feature_group_count``; ``bias`` is not ``(C_out,)``; or ``impl`` names a
        formulation that is unknown or cannot express the call.
      TypeError: ``x``, ``kernel`` and ``bias`` differ in dtype, or ``impl`` is neither a
        string nor a callable.

    >>> import jax.numpy as jnp
    >>> pointwise(jnp.ones((4, 8, 8, 32)), jnp.ones((32, 8)), strides=(2, 2)).shape
    (4, 4, 4, 8)
    >>> pointwise(jnp.ones((4, 8, 8, 32)), jnp.ones((1, 1, 32, 8))).shape
    (4, 8, 8, 8)
    """
    with jax.named_scope("jaxconv.pointwise"):
        shape = pointwise_kernel_shape(x.shape, kernel.shape, strides)
        if any(k != 1 for k in shape[:-2]):
            raise ValueError(f"pointwise: kernel shape {tuple(kernel.shape)} is not 1x..x1; use "
                             "conv for larger kernels")
        prepared = prepare(x.shape, shape, op="pointwise", strides=strides, padding="VALID",
                           feature_group_count=feature_group_count, precision=precision,
                           compilation=compilation)
        return run(prepared, x, kernel.reshape(shape), bias, op="pointwise", impl=impl)
