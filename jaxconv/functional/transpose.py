"""Transposed convolution: the adjoint (input gradient) of a forward convolution.

The kernel is the forward conv's: ``(*kernel_spatial, C_out // groups, C_in)`` for a transposed
conv from ``C_in`` to ``C_out`` channels (Keras's ``Conv*DTranspose`` layout; a PyTorch
``ConvTranspose2d`` weight ``w`` is ``w.permute(2, 3, 1, 0)``), so that
``<conv(x, k), y> == <x, conv_transpose(y, k)>`` for the same ``k``, strides, padding and groups.

Padding names the *forward* conv's padding, as in PyTorch: an int ``p`` crops ``p`` positions from
each side of the full transposed output. Per spatial dim, with dilated kernel ``w = d (k - 1) + 1``
and forward pads ``(lo, hi)``, the output size is ``(in - 1) * s + w - lo - hi + output_padding``
(Dumoulin and Visin 2016, "A guide to convolution arithmetic", arXiv:1603.07285, relationship 14).
``"SAME"`` gives ``in * s`` and ``"VALID"`` gives ``(in - 1) * s + w``.

**Differs from ``flax.nnx.ConvTranspose``**: Flax's kernel is ``(*k, C_in, C_out)`` and applied
unflipped (unless ``transpose_kernel=True``), and its integer padding is applied to the
stride-dilated input instead of cropping the output. A Flax layer with kernel ``kf``,
``transpose_kernel=False`` and explicit padding ``(lo_f, hi_f)`` computes
``conv_transpose(x, jnp.flip(kf, spatial axes).swapaxes(-1, -2), padding=(w - 1 - lo_f,
w - 1 - hi_f))`` here; its ``"SAME"`` and ``"VALID"`` match ours whenever ``w >= s``. Keras's
``"VALID"`` pads to ``(in - 1) * s + max(w, s)``; pass ``output_padding=s - w`` for that when
``w < s``.

>>> import jax.numpy as jnp
>>> x, k = jnp.ones((1, 5, 5, 16)), jnp.ones((3, 3, 32, 16))   # 16 -> 32 channels
>>> conv_transpose(x, k, strides=2).shape                      # SAME: 5 * 2
(1, 10, 10, 32)
>>> conv_transpose(x, k, strides=2, padding=1, output_padding=1).shape   # PyTorch's numbers
(1, 10, 10, 32)
>>> conv_transpose(x, k, strides=2, padding="VALID").shape     # (5 - 1) * 2 + 3
(1, 11, 11, 32)
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jaxconv.functional import _checks, policy
from jaxconv.functional import padding as padlib
from jaxconv.functional.conv import checked_compilation
from jaxconv.functional.formulations import CONV, Compilation, ConvSpec, Formulation, xla
from jaxconv.functional.formulations.onednn import onednn as onednn_forward
from jaxconv.functional.formulations.onednn import unsupported_dtype, unsupported_onednn
from jaxconv.typing import Array, IntOrSeq, PaddingLike


def forward_kernel(kernel: Array, groups: int) -> Array:
    """The kernel of the input-dilated forward conv that equals ``conv_transpose``.

    ``(*k, C_out // g, C_in)`` becomes ``(*k, C_in // g, C_out)``: spatially flipped, with the
    channel roles swapped inside each group.
    """
    *k, out_per_group, channels = kernel.shape
    rank = len(k)
    w = jnp.flip(kernel, axis=tuple(range(rank)))
    w = w.reshape((*k, out_per_group, groups, channels // groups))
    w = w.transpose((*range(rank), rank + 2, rank + 1, rank))
    return w.reshape((*k, channels // groups, out_per_group * groups))


def _xla(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    return xla(x, forward_kernel(kernel, spec.feature_group_count), spec)


def _subpixel_unsupported(spec: ConvSpec) -> str | None:
    if any(d != 1 for d in spec.kernel_dilation):
        return f"kernel_dilation={spec.kernel_dilation}"
    if all(s == 1 for s in spec.input_dilation):
        return "strides=1 (nothing to decompose)"
    return None


def subpixel(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """A strided transposed conv as one stride-1 conv per output phase, interleaved.

    With stride ``s``, output position ``s * q + r`` only ever meets the kernel taps
    ``t = t_r, t_r + s, ...`` (``t_r = (lo - r) mod s`` for the forward-equivalent low pad
    ``lo``), at input positions ``q + c_r + m``: a plain convolution of the undilated input with
    that sub-kernel. The ``prod(s)`` phase outputs are interleaved into the result, so no
    multiply ever meets an inserted zero, forward or backward (Shi et al. 2016, "Real-time single
    image and video super-resolution using an efficient sub-pixel convolutional neural network",
    arXiv:1609.05158, for the equivalence). Each phase's conv is an ordinary forward conv, so
    ``impl="auto"`` picks its formulation as `conv` would.
    """
    w = forward_kernel(kernel, spec.feature_group_count)
    rank, strides = spec.rank, spec.input_dilation
    spatial = spec.input_shape[1:-1]
    out = spec.output_shape
    per_dim = []                      # per dim: for each phase r, (tap slice, pads, length)
    for n, k, s, (lo, _), size in zip(spatial, spec.kernel_shape[:-2], strides, spec.padding,
                                      out[1:-1]):
        phases = []
        for r in range(s):
            first = (lo - r) % s
            taps = len(range(first, k, s))
            length = len(range(r, size, s))
            low = -((r + first - lo) // s)
            phases.append((slice(first, k, s), taps, (low, length - 1 + taps - n - low),
                           length))
        per_dim.append(phases)
    q_max = [-(-size // s) for size, s in zip(out[1:-1], strides)]
    parts = []
    for phase in itertools.product(*(range(s) for s in strides)):
        chosen = [per_dim[d][r] for d, r in enumerate(phase)]
        lengths = tuple(c[3] for c in chosen)
        if any(c[1] == 0 for c in chosen):
            y = jnp.zeros((out[0], *lengths, out[-1]), spec.preferred_element_type or x.dtype)
        else:
            sub = w[(*(c[0] for c in chosen), slice(None), slice(None))]
            # Negative pads crop the input instead: XLA's CPU conv mishandles negative padding.
            crop = tuple(slice(max(-lo, 0), n - max(-hi, 0))
                         for n, (lo, hi) in zip(spatial, (c[2] for c in chosen)))
            xs = x[(slice(None), *crop, slice(None))]
            sub_spec = dataclasses.replace(
                spec, input_shape=tuple(xs.shape), kernel_shape=tuple(sub.shape),
                strides=(1,) * rank, input_dilation=(1,) * rank,
                padding=tuple((max(lo, 0), max(hi, 0)) for lo, hi in (c[2] for c in chosen)))
            compute, _ = policy.choose("conv", CONV, policy.CONV_POLICIES, sub_spec, "auto",
                                       dtype=x.dtype)
            y = compute(xs, sub, sub_spec)
        pad = [(0, 0), *((0, q - n) for q, n in zip(q_max, lengths)), (0, 0)]
        parts.append(jnp.pad(y, pad))
    stacked = jnp.stack(parts, axis=1).reshape((out[0], *strides, *q_max, out[-1]))
    order = (0, *(a for d in range(rank) for a in (1 + rank + d, 1 + d)), 1 + 2 * rank)
    merged = stacked.transpose(order).reshape(
        (out[0], *(q * s for q, s in zip(q_max, strides)), out[-1]))
    return merged[(slice(None), *(slice(0, size) for size in out[1:-1]), slice(None))]


def adjoint_spec(spec: ConvSpec, kernel_shape: Sequence[int]) -> ConvSpec | str:
    """The forward conv whose input gradient is the transposed conv ``spec`` describes, or why
    there is none without cropping.

    ``spec`` is the input-dilated forward conv `prepare_transpose` returns; its adjoint runs
    from the transposed conv's output (``C_out`` channels) to its input (``C_in``) with the
    transposed conv's kernel as is (``(*k, C_out // g, C_in)`` is that conv's HWIO kernel), its
    strides (``spec.input_dilation``) and the forward padding ``(lo, hi)``. ``output_padding``
    widens the output on the high side past what the adjoint's windows reach; padding the
    adjoint's high side by ``hi - output_padding`` places its windows exactly, and any pad up
    to ``stride - 1`` larger places them the same (the last window starts where it did), which
    keeps the pad non-negative.
    """
    strides = spec.input_dilation
    out = spec.output_shape
    pads = []
    for w, (fp_lo, fp_hi), s in zip(spec.window, spec.padding, strides):
        lo, hi = w - 1 - fp_lo, w - 1 - fp_hi
        if lo < 0:
            return f"padding crops {-lo} more positions than the window covers (low side)"
        if hi < 0:
            if hi + s - 1 < 0:
                return f"output_padding reaches {-hi} positions past the last window"
            hi = 0
        pads.append((lo, hi))
    adjoint = dataclasses.replace(
        spec, input_shape=out, kernel_shape=tuple(kernel_shape), strides=strides,
        padding=tuple(pads), input_dilation=(1,) * spec.rank)
    if adjoint.output_shape[1:-1] != spec.input_shape[1:-1]:
        return (f"no padding of the adjoint conv gives back the input size "
                f"{spec.input_shape[1:-1]}")
    return adjoint


def _onednn_unsupported(spec: ConvSpec) -> str | None:
    *k, c_in_g, c_out = spec.kernel_shape
    groups = spec.feature_group_count
    adjoint = adjoint_spec(spec, (*k, c_out // groups, c_in_g * groups))
    return adjoint if isinstance(adjoint, str) else unsupported_onednn(adjoint)


def onednn(x: Array, kernel: Array, spec: ConvSpec) -> Array:
    """oneDNN's backward-data convolution of the adjoint conv (`adjoint_spec`): the transposed
    conv's definition computed directly, with no inserted zeros and no flipped kernel copy.

    It is the transpose of the ``onednn`` forward conv in its input, so its dtypes and its
    derivatives (the transposes of backward-data: the forward conv and backward-weights) are
    that formulation's."""
    adjoint = adjoint_spec(spec, kernel.shape)
    dtype = jnp.result_type(x.dtype, kernel.dtype)
    output = jax.ShapeDtypeStruct((x.shape[0], *adjoint.input_shape[1:]), dtype)
    (y,) = jax.linear_transpose(lambda a: onednn_forward(a, kernel, adjoint),
                                output)(x.astype(dtype))
    return y


#: Transposed-conv formulations. Each gets the kernel in ``conv_transpose``'s layout and the spec
#: of the equivalent forward conv (input dilation = the transposed conv's strides).
TRANSPOSE: dict[str, Formulation] = {
    "xla": Formulation("xla", _xla, lambda spec: None,
                       "lax.conv_general_dilated on the stride-dilated input (lhs_dilation)"),
    "subpixel": Formulation("subpixel", subpixel, _subpixel_unsupported,
                            "one stride-1 conv per output phase, interleaved"),
    "onednn": Formulation("onednn", onednn, _onednn_unsupported,
                          "oneDNN's backward-data convolution (native extension, CPU)",
                          unsupported_dtype),
}
"""Transposed-conv formulations by ``impl=`` name: ``xla`` (the input-dilated forward conv),
``subpixel`` (one stride-1 conv per output phase) and ``onednn`` (oneDNN's backward-data conv,
where the native extension is built). Each takes the kernel in `conv_transpose`'s layout and
the `ConvSpec` of the equivalent forward conv.

>>> list(TRANSPOSE)
['xla', 'subpixel', 'onednn']
"""
TRANSPOSE_POLICY_V1: tuple[policy.PolicyRow, ...] = (
    policy.PolicyRow("cpu", policy.ANY, "subpixel",
                     "XLA's CPU backward of an input-dilated conv is slow; one stride-1 conv per "
                     "output phase, each as conv's policy picks, measured (experiments/"
                     "bench_ops.py --cases transposed, the jaxconv command's settings: batch 64, "
                     "16x16, 3x3 stride 2, 64->32, forward+backward; AMD EPYC, AVX2) 26.0 ms vs "
                     "286.5 ms",
                     fuzzed=policy.fuzzed_line(
                         "98 configurations: rank 1-3, kernel 1-4, strides 1, kernel dilation 1, "
                         "input dilation 1-3, groups 1-3, channels 1-96, batch 1-3")),
)
#: Version 2: oneDNN's backward-data conv for dense transposed convs where the native extension
#: runs on an AVX-512 CPU, in the dense forward row's measured range
#: (`jaxconv.functional.policy.onednn_dense`), then version 1's row.
TRANSPOSE_POLICY_V2: tuple[policy.PolicyRow, ...] = (
    policy.PolicyRow("cpu", "dense", "onednn",
                     "oneDNN's backward-data conv of the adjoint, no inserted zeros, measured "
                     "7.8 ms vs subpixel's 31.5 ms (3x3 stride 2, 64->32, 16x16, batch 64, "
                     "forward+backward); held to the dense forward row's range "
                     f"({policy.ONEDNN_TIMINGS})",
                     when=policy.onednn_dense, dtypes=("float32",),
                     fuzzed=policy.onednn_fuzzed_line(
                         "28 configurations: rank 2-3, kernel 1-4, strides 1, kernel dilation "
                         "1-2, input dilation 1-3, groups 1, channels 1-48, batch 1-3")),
    *TRANSPOSE_POLICY_V1,
)
#: Every version's transposed-conv rows (`jaxconv.functional.policy.CONV_POLICIES`).
#: Version 3 changed forward-conv rows only, version 4 BatchNorm only.
TRANSPOSE_POLICIES: dict[int, tuple[policy.PolicyRow, ...]] = {1: TRANSPOSE_POLICY_V1,
                                                               2: TRANSPOSE_POLICY_V2,
                                                               3: TRANSPOSE_POLICY_V2,
                                                               4: TRANSPOSE_POLICY_V2}
#: The current version's rows.
TRANSPOSE_POLICY = TRANSPOSE_POLICIES[policy.POLICY_VERSION]


def prepare_transpose(
    x_shape: Sequence[int], kernel_shape: Sequence[int], *, strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME", output_padding: IntOrSeq | None = None,
    kernel_dilation: IntOrSeq = 1, feature_group_count: int = 1, precision: Any = None,
    preferred_element_type: Any = None, compilation: Compilation | None = None,
) -> ConvSpec:
    """Validates a transposed conv and returns the spec of its equivalent forward conv."""
    op = "conv_transpose"
    x_shape, kernel_shape, rank = _checks.shapes(x_shape, kernel_shape, op=op,
                                                 what="transposed convolution")
    strides = _checks.int_tuple("strides", strides, rank)
    dilation = _checks.int_tuple("kernel_dilation", kernel_dilation, rank)
    groups = _checks.positive_int("feature_group_count", feature_group_count)
    *_, out_per_group, in_channels = kernel_shape
    batch, spatial, channels = _checks.split_input(x_shape, rank)
    if channels != in_channels:
        raise ValueError(
            f"{op}: input has {channels} channels but the kernel expects {in_channels} (kernel "
            f"shape {kernel_shape} is (*kernel_spatial, C_out // groups, C_in))")
    _checks.groups_divide_channels(op, groups, channels)
    window = tuple((k - 1) * d + 1 for k, d in zip(kernel_shape[:-2], dilation))
    forward_in = tuple(n * s for n, s in zip(spatial, strides))
    pads, fill = padlib.amounts(padding, in_spatial=forward_in, window=window, strides=strides)
    if fill is not None:
        raise ValueError(
            f"{op}: padding={padding!r} fills with {fill!r}, which a transposed conv does not "
            "define; expected 'SAME', 'VALID', 'CAUSAL', an int, one int or (low, high) pair per "
            "spatial dim")
    if output_padding is None:
        is_same = isinstance(padding, str) and padding.upper() == "SAME"
        output_padding = tuple(
            max(n * s - ((n - 1) * s + w - lo - hi), 0) if is_same else 0
            for n, s, w, (lo, hi) in zip(spatial, strides, window, pads))
    output_padding = _checks.int_tuple("output_padding", output_padding, rank, minimum=0)
    for op_, s, d in zip(output_padding, strides, dilation):
        if op_ >= max(s, d):
            raise ValueError(
                f"{op}: output_padding={output_padding} must be smaller than strides={strides} "
                f"(or kernel_dilation={dilation}) in every spatial dim")
    forward_pads = tuple((w - 1 - lo, w - 1 - hi + extra)
                         for w, (lo, hi), extra in zip(window, pads, output_padding))
    spec = ConvSpec((batch, *spatial, channels),
                    (*kernel_shape[:-2], channels // groups, out_per_group * groups),
                    (1,) * rank, forward_pads, strides, dilation, groups, precision,
                    preferred_element_type, checked_compilation(compilation))
    _checks.nonempty_output(op, spec.output_shape[1:-1],
                            f"padding {pads} crops more than the full output of the input "
                            f"{spatial}")
    return spec


def conv_transpose(
    x: Array, kernel: Array, bias: Array | None = None, *, strides: IntOrSeq = 1,
    padding: PaddingLike = "SAME", output_padding: IntOrSeq | None = None,
    kernel_dilation: IntOrSeq = 1, feature_group_count: int = 1, precision: Any = None,
    preferred_element_type: Any = None, impl: str = "auto",
    compilation: Compilation | None = None,
) -> Array:
    """Transposed ("fractionally strided") convolution; see the module docstring for layout.

    Args:
      x: ``(*batch, *spatial, C_in)``.
      kernel: ``(*kernel_spatial, C_out // feature_group_count, C_in)``.
      bias: ``(C_out,)`` or ``None``.
      strides: upsampling factor per spatial dim.
      padding: the forward conv's padding (``"SAME"``, ``"VALID"``, ``"CAUSAL"``, int, per dim).
      output_padding: extra positions on the high side, each smaller than the stride (or the
        dilation); ``None`` is 0, except under ``"SAME"`` where it makes the output ``in * s``.
      kernel_dilation, feature_group_count, precision, preferred_element_type: as in `conv`.
      impl: ``"auto"``, ``"autotune"`` or a formulation of `TRANSPOSE`: ``"xla"`` (the
        input-dilated forward conv), ``"subpixel"``, or ``"onednn"`` (where the native
        extension is built).
      compilation: as in `conv`.

    Returns:
      ``(*batch, *out_spatial, C_out)``.
    """
    with jax.named_scope("jaxconv.conv_transpose"):
        if callable(impl):
            raise TypeError(f"conv_transpose: impl={impl!r} must be a formulation name, one of "
                            f"{', '.join(map(repr, ['auto', *TRANSPOSE]))}")
        spec = prepare_transpose(
            x.shape, kernel.shape, strides=strides, padding=padding,
            output_padding=output_padding, kernel_dilation=kernel_dilation,
            feature_group_count=feature_group_count, precision=precision,
            preferred_element_type=preferred_element_type, compilation=compilation)
        _checks.same_dtype("conv_transpose", x=x, kernel=kernel, bias=bias)
        _checks.bias_shape("conv_transpose", bias, spec.out_channels)
        compute, _ = policy.choose("conv_transpose", TRANSPOSE, TRANSPOSE_POLICIES, spec, impl,
                                   dtype=x.dtype, kernel_shape=kernel.shape)
        xb, restore = _checks.batch_input(x, spec.rank)
        return restore(_checks.add_bias(compute(xb, kernel, spec), bias))
