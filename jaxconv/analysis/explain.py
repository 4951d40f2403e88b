"""`explain`: what one convolution does to its channels, in numbers and plain words.

For a conv spec and one input shape it answers: the output shape; the kernel tensor and how to
read it (filters, 2-D slices); what one output value sums over; parameters; MACs; for a 1x1 the
matmul form and its rank bound; for depthwise, separable and grouped convs the comparison with
the dense conv of the same shape. Shapes are resolved by `jaxconv.functional.plan`, so every
mistake gets the ops' own error messages.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from jaxconv import functional

KINDS = ("conv1d", "conv2d", "conv3d", "pointwise", "depthwise", "separable", "transpose")
"""The convolutions `explain` knows, as ``jaxconv explain`` takes them."""


@dataclasses.dataclass(frozen=True)
class Explanation:
    """Numbers and text of `explain`. ``params = weights + biases``; ``macs`` per example.

    Attributes:
      kind: the `KINDS` name explained.
      input_shape: one example's shape, ``(*spatial, channels)``.
      output_shape: the output's shape for that example.
      kernels: the kernel shapes by name (``"kernel"``; ``"depthwise"`` and ``"pointwise"`` for
        a separable conv).
      weights: kernel entries.
      biases: bias entries.
      macs: multiply-accumulates per example, every tap of every window.
      sums_over: products summed into one output value.
      lines: the explanation, one sentence per line (``text`` joins them).
    """

    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernels: dict[str, tuple[int, ...]]
    weights: int
    biases: int
    macs: int
    sums_over: int
    lines: tuple[str, ...]

    @property
    def params(self) -> int:
        return self.weights + self.biases

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _x(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _rank(kind: str, input_shape: Sequence[int]) -> int:
    return {"conv1d": 1, "conv2d": 2, "conv3d": 3}.get(kind, len(input_shape) - 1)


def _dense(channels: int, filters: int, taps: int, outputs: int) -> tuple[int, int]:
    """Parameters and MACs of the dense conv with the same shapes."""
    return taps * channels * filters + filters, outputs * taps * channels


def _dead_taps(input_shape: Sequence[int], size: Sequence[int], padding,
               weights: int) -> list[str]:
    """Lines for spatial dims of size 1, where only the kernel's middle taps ever see data."""
    if not (isinstance(padding, str) and padding.upper() == "SAME"):
        return []
    lines, live = [], weights
    for dim, (n, k) in enumerate(zip(input_shape[:-1], size)):
        if n == 1 and k > 1:
            middle = (k - 1) // 2
            live //= k
            lines.append(f"Spatial dim {dim} has size 1: SAME pads it with zeros, so only kernel "
                         f"index {middle} of {k} along it ever multiplies data.")
    if lines:
        lines.append(f"Only {live:,} of the {weights:,} weights can ever affect the output; the "
                     "result equals the lower-rank conv with those middle slices.")
    return lines


def explain(kind: str, input_shape: Sequence[int], *, filters: int | None = None,
            kernel: int | Sequence[int] = 3, strides: int | Sequence[int] = 1,
            padding: str | int = "SAME", groups: int = 1, dilation: int | Sequence[int] = 1,
            depth_multiplier: int = 1, use_bias: bool = True) -> Explanation:
    """Explains one convolution on one example of shape ``(*spatial, channels)``.

    >>> e = explain("conv2d", (64, 64, 3), filters=32, kernel=3)
    >>> e.output_shape, e.params, e.macs
    ((64, 64, 32), 896, 3538944)

    Args:
      kind: one of `KINDS`.
      input_shape: one example's shape, ``(*spatial, channels)``, with as many spatial dims as
        the kind has (``conv3d``: three).
      filters: output channels (every kind but ``depthwise``, which has ``depth_multiplier``).
      kernel: kernel side, or one per spatial dim (a pointwise conv's is 1).
      strides: stride, or one per spatial dim.
      padding: ``"SAME"``, ``"VALID"``, ``"CAUSAL"`` or an int, as the convs take it.
      groups: ``feature_group_count`` of a grouped conv.
      dilation: kernel dilation, or one per spatial dim.
      depth_multiplier: outputs per input channel of a depthwise conv.
      use_bias: whether the conv has a bias.

    Returns:
      The numbers and the text (``.text``, as ``jaxconv explain`` prints it).
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not one of {', '.join(KINDS)}")
    input_shape = tuple(input_shape)
    rank = _rank(kind, input_shape)
    if len(input_shape) != rank + 1:
        raise ValueError(f"input shape {_x(input_shape)} does not fit {kind}: expected "
                         f"{rank} spatial dims and channels")
    if kind != "depthwise" and not filters:
        raise ValueError(f"{kind} needs filters (the number of output channels)")
    channels = input_shape[-1]
    size = (1,) * rank if kind == "pointwise" else \
        ((kernel,) * rank if isinstance(kernel, int) else tuple(kernel))
    taps = math.prod(size)
    bias = int(use_bias)
    common = dict(strides=strides, kernel_dilation=dilation)
    if kind in ("conv1d", "conv2d", "conv3d", "pointwise"):
        k = (*size, channels // groups, filters)
        spec = functional.plan((1, *input_shape), k, padding=padding, feature_group_count=groups,
                               **common).spec
    elif kind == "depthwise":
        filters = channels * depth_multiplier
        k = (*size, 1, filters)
        spec = functional.plan((1, *input_shape), k, op="depthwise_conv", padding=padding,
                               **common).spec
    elif kind == "separable":
        k = (*size, 1, channels * depth_multiplier)
        spec = functional.plan((1, *input_shape), k, op="depthwise_conv", padding=padding,
                               **common).spec
    else:
        k = (*size, filters // groups, channels)
        spec = functional.plan((1, *input_shape), k, op="conv_transpose", padding=padding,
                               feature_group_count=groups, **common).spec
    out = spec.output_shape[1:]
    if kind == "separable":
        out = (*out[:-1], filters)
    positions = math.prod(out[:-1])
    window = f"{size[0]}-tap" if rank == 1 else "x".join(map(str, size))
    head = (f"{kind}: input {_x(input_shape)} -> output {_x(out)} (strides {strides}, "
            f"padding {padding!r}{f', groups {groups}' if groups > 1 else ''})")

    if kind == "separable":
        middle = channels * depth_multiplier
        kernels = {"depthwise": k, "pointwise": (middle, filters)}
        weights = taps * middle + middle * filters
        macs = positions * middle * taps + positions * middle * filters
        dense_params, dense_macs = _dense(channels, filters, taps, positions * filters)
        lines = [
            head,
            f"Kernels: depthwise {k} (one {window} filter per input channel) then pointwise "
            f"{(middle, filters)} (a {middle}x{filters} matrix).",
            f"Parameters: {taps * middle:,} + {middle * filters:,} weights + {filters * bias} "
            f"biases = {weights + filters * bias:,}.",
            f"One output value: a {window} window of each channel (one channel at a time), then "
            f"a weighted sum over the {middle} filtered channels.",
            f"MACs per example: {macs:,}.",
            f"Against a dense {window} conv {channels}->{filters} ({dense_params:,} parameters, "
            f"{dense_macs:,} MACs): {(weights + filters * bias) / dense_params:.1%} of the "
            f"parameters and {macs / dense_macs:.1%} of the MACs. Spatial filtering and channel "
            "mixing are done by separate layers.",
        ]
        return Explanation(kind, input_shape, out, kernels, weights, filters * bias, macs,
                           taps, tuple(lines))

    if kind == "transpose":
        weights = math.prod(k)
        macs = math.prod(input_shape) * taps * (filters // groups)
        lines = [
            head,
            f"Kernel: {k} = the kernel of the forward conv {filters}->{channels} it transposes "
            f"(*kernel, C_out // groups, C_in).",
            f"Parameters: {weights:,} weights + {filters * bias} biases = "
            f"{weights + filters * bias:,}.",
            f"Each input value scatters a {window} patch into each of {filters // groups} output "
            f"channels, spaced by the stride: the output is {_x(out[:-1])}.",
            f"MACs per example: {macs:,}.",
        ]
        return Explanation(kind, input_shape, out, {"kernel": k}, weights, filters * bias,
                           macs, taps * channels // groups, tuple(lines))

    per_group = channels // groups if kind != "depthwise" else 1
    sums_over = taps * per_group
    weights = math.prod(k)
    macs = math.prod(out) * sums_over
    biases = filters * bias
    lines = [head]
    if kind == "depthwise":
        lines.append(f"Kernel: {k} = {filters} filters of {window}, each reading one input "
                     f"channel ({depth_multiplier} per channel).")
    elif kind == "pointwise":
        each = f"matrix per group of {groups}" if groups > 1 else "matrix"
        lines.append(f"Kernel: {k} = a {per_group}x{filters // groups} {each}: {filters} "
                     f"filters, each reading {per_group} channels of one pixel.")
    else:
        lines.append(f"Kernel: {k} = {filters} filters, each {window}x{per_group} (one {window} "
                     f"slice per input channel{' of its group' if groups > 1 else ''}): "
                     f"{per_group * filters} {rank}-D slices.")
    lines += [
        f"Parameters: {weights:,} weights + {biases} biases = {weights + biases:,}.",
        *_dead_taps(input_shape, size, padding, weights),
        f"One output value: sums {window}x{per_group} = {sums_over} products (+ bias).",
        f"MACs per example: {macs:,} ({_x(out)} outputs x {sums_over}).",
    ]
    if kind == "pointwise" and groups == 1:
        lines.append(
            f"Matmul form: at each of the {positions:,} positions, y = W.T @ x + b with W the "
            f"{channels}x{filters} matrix: a Dense layer shared by every pixel, no spatial "
            "mixing.")
        if filters < channels:
            lines.append(
                f"Rank bound: the {filters} outputs at a pixel are a linear projection of its "
                f"{channels} inputs, so they keep at most {filters} directions of them; which "
                f"{filters} is what training learns.")
        else:
            lines.append(f"With {filters} >= {channels} outputs the map can keep all "
                         f"{channels} input directions (rank <= {channels}).")
    elif kind == "depthwise" or groups > 1:
        dense_params, dense_macs = _dense(channels, filters, taps, math.prod(out))
        lines.append(
            f"Against a dense {window} conv {channels}->{filters} ({dense_params:,} parameters, "
            f"{dense_macs:,} MACs): {(weights + biases) / dense_params:.1%} of the parameters "
            f"and {macs / dense_macs:.1%} of the MACs; channels mix only inside a group of "
            f"{per_group}.")
    else:
        lines.append(
            f"How {channels} channels become {filters}: each of the {filters} output maps has "
            f"its own {window}x{channels} filter. At every position it multiplies each of its "
            f"{channels} slices with the {window} window of the matching input channel and adds "
            f"all {sums_over} products and its bias. Every output map mixes all {channels} "
            f"input channels; the number of output channels is the number of filters, whatever "
            "the number of input channels.")
    return Explanation(kind, input_shape, out, {"kernel": k}, weights, biases, macs, sums_over,
                       tuple(lines))
