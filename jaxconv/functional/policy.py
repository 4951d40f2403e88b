"""Which formulation ``impl="auto"`` picks, per backend and shape class, and why.

The policy is a table of rows ``(backend, shape class, impl, reason)`` read top to bottom; the
first row that matches the call and whose formulation can express it wins, and ``"xla"`` is the
fall-back. Rows for a backend exist only where that backend was measured; the reason of every
row says what justified it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp

from jaxconv.functional import autotune
from jaxconv.functional.formulations import UNFUZZED, ConvSpec, Formulation, xla
from jaxconv.functional.formulations.dense import slow_ynnpack_takes
from jaxconv.tuning import machine, native

ANY = "*"
#: The current version of the auto policy's rows: `CONV_POLICY`'s and
#: `jaxconv.functional.transpose.TRANSPOSE_POLICY`'s backend, shape class, impl, ``when`` and
#: order, and what a ``when`` decides. A change to them is a new version, added to
#: `CONV_POLICIES` and `jaxconv.functional.transpose.TRANSPOSE_POLICIES` beside the old ones
#: (a changed pick changes a run's numbers), with the new rows' fingerprint (which sees a
#: ``when`` by its name only) recorded in tests/functional/test_policy_version.py. It does not
#: cover the formulations' own code, nor the reason texts. Every run records the version it
#: ran (``result.json``'s ``choices.policy_version``); a study that pins
#: ``train.policy_version`` runs that version's rows under any later code
#: (`Compilation.policy_version`).
POLICY_VERSION = 4


@dataclasses.dataclass(frozen=True)
class PolicyRow:
    """``impl`` for calls on ``backend`` of ``shape_class`` (and, with ``when``, only where
    ``when(spec)`` holds: facts of the CPU or the compilation that the row was measured on).
    ``fuzzed`` says which shapes the formulation fuzz (`jaxconv.bench.fuzz`) checked this
    row's choices on, and where its report is; ``dtypes``, when given, the dtype names the row
    holds for (those it was measured in)."""

    backend: str
    shape_class: str
    impl: str
    reason: str
    when: Callable[[ConvSpec], bool] | None = None
    fuzzed: str = ""
    dtypes: tuple[str, ...] = ()

    def applies(self, spec: ConvSpec, backend: str, dtype: Any = jnp.float32) -> bool:
        """Whether the row decides a call of ``spec`` on ``backend`` in ``dtype`` (rows with
        ``dtypes`` only for those dtypes, the ones they were measured in)."""
        return (self.backend in (ANY, backend) and self.shape_class in (ANY, spec.shape_class)
                and (not self.dtypes or jnp.dtype(dtype).name in self.dtypes)
                and (self.when is None or self.when(spec)))


#: The largest im2col tensor per example the ``narrow -> patches`` row accepts: 512 KiB, a
#: batch of 128 of them 64 MiB, a hundred times what it was measured on (batch 128 of 28x28
#: with 9 taps: 3.6 MB). Per example, so that the choice does not depend on the batch size
#: (which may be symbolic, as in an export for any batch).
PATCHES_MAX_BYTES = 512 << 10


def patch_bytes(spec: ConvSpec) -> int:
    """Bytes of the float32 im2col tensor ``patches`` builds for one example: one patch per
    output pixel."""
    pixels = 1
    for n in spec.output_shape[1:-1]:
        pixels *= n
    return 4 * pixels * spec.patch_size


#: The formulation fuzz behind the CPU rows' ``fuzzed`` lines (``experiments/fuzz_cpu.sh``:
#: 2,000 `jaxconv.bench.fuzz` cases of seed 1 and 150 wide ones of seed 2; values and both
#: gradients, float32 and bfloat16, against lax and PyTorch), run on an AMD EPYC with AVX2 and
#: no AVX-512 (so ``auto`` took the rows measured for that CPU class), jaxlib 0.10.2.
FUZZ_REPORTS = ("experiments/results/fuzz_cpu.md", "experiments/results/fuzz_cpu_wide.md")


def fuzzed_line(shapes: str) -> str:
    """A row's ``fuzzed`` line: what `jaxconv.bench.fuzz.row_shapes` says ``auto`` sent to the
    row in the runs of `FUZZ_REPORTS`, and where they are reported."""
    return f"{shapes}; on an AVX2 CPU ({', '.join(FUZZ_REPORTS)})"


#: Rows for forward convolutions (conv, pointwise, depthwise and the separable parts), version 1.
CONV_POLICY_V1: tuple[PolicyRow, ...] = (
    PolicyRow("cpu", "pointwise", "matmul",
              "a 1x..x1 kernel without groups or input dilation is a matmul over channels; "
              "dot_general skips the convolution machinery (CPU, experiments/bench_ops.py, "
              "batch 64, 32x32, 128->128, forward+backward: 48.0 ms vs 151.8 ms)",
              fuzzed=fuzzed_line("494 configurations: rank 1-3, kernel 1, strides 1-3, kernel "
                                 "dilation 1-2, input dilation 1, groups 1, channels 1-45, batch "
                                 "1-3")),
    PolicyRow("cpu", "grouped_pointwise", "matmul",
              "a grouped 1x1 conv is one batched dot_general over the groups; measured on CPU "
              "(batch 64, 16x16, forward+backward) 15x faster than XLA's grouped conv at 64 "
              "channels / 2 groups and 17x at 128 / 8",
              fuzzed=fuzzed_line("65 configurations: rank 1-3, kernel 1, strides 1-3, kernel "
                                 "dilation 1-2, input dilation 1, groups 2-50, channels 2-100, "
                                 "batch 1-3")),
    PolicyRow("cpu", "depthwise", "shift",
              "XLA's CPU depthwise conv (a grouped conv) is slow, its backward most; one shifted "
              "multiply-add per tap measured (experiments/bench_ops.py, batch 64, 16x16x128, "
              "forward+backward) 4.8 ms vs 105.9 ms at 3x3 and 19.7 ms vs 275.8 ms at 7x7",
              fuzzed=fuzzed_line("419 configurations: rank 1-3, kernel 1-4, strides 1-3, kernel "
                                 "dilation 1-2, input dilation 1, groups 2-80, channels 2-160, "
                                 "batch 1-3")),
    PolicyRow("cpu", "narrow", "patches",
              "XLA's CPU conv handles few input channels poorly, its kernel gradient most; "
              "im2col + matmul measured (experiments/bench_ops.py, batch 128, 28x28x1->32, 3x3, "
              "forward+backward) 2.5 ms vs 20.3 ms; 18.3 ms vs 34.1 ms at 32x32x3->32 (forward "
              "and kernel gradient), but 2.2x slower at 8 input channels; measured on 2-D "
              "images only, with patch tensors of at most a few MB",
              when=lambda spec: spec.rank == 2 and patch_bytes(spec) <= PATCHES_MAX_BYTES,
              fuzzed=fuzzed_line("138 configurations: rank 2, kernel 1-4, strides 1-3, kernel "
                                 "dilation 1-2, input dilation 1, groups 1, channels 1-3, batch "
                                 "1-3")),
    PolicyRow("cpu", "dense", "row_taps",
              "jaxlib 0.10 hands 2-D convs to YNNPACK, which on this CPU class (no AVX-512) "
              "runs them far slower than XLA's own, and takes no 1-D conv; the row taps along "
              "the channels of one 1-D conv measured (experiments/results/fit_cpu_avx2.md, AMD "
              "EPYC AVX2, batch 64, 3x3, forward+backward) 201 ms vs 1,628 ms at 32x32x64, "
              "172 ms vs 261 ms at 16x16x128, 109 ms vs 172 ms at stride 2, 207 ms vs 1,945 "
              "ms at dilation 2",
              when=slow_ynnpack_takes,
              fuzzed=fuzzed_line("17 configurations: rank 2, kernel 1-4, strides 1-3, kernel "
                                 "dilation 1-2, input dilation 1, groups 1, channels 1-48, batch "
                                 "1-3")),
    PolicyRow("cpu", "dense", "depth_taps",
              "XLA's CPU 3-D conv is slow, its backward most; the depth taps laid along the "
              "channels of one 2-D conv measured (experiments/bench_ops.py, batch 8, 16^3, "
              "3x3x3, 32->32, forward+backward) 32.3 ms vs 98.8 ms; 6.3 ms vs 166.1 ms at "
              "stride 2 and 13.3 ms vs 74.0 ms on batch 4 of 8x32x32x16 (a separate run)",
              fuzzed=fuzzed_line("47 configurations: rank 3, kernel 1-4, strides 1-3, kernel "
                                 "dilation 1-2, input dilation 1, groups 1, channels 1-48, batch "
                                 "1-3")),
    PolicyRow("cpu", "grouped", "split",
              "XLA's CPU grouped conv backward is slow; one dense conv per group measured "
              "(experiments/bench_ops.py, batch 64, 16x16, 128->128, forward+backward) 26.6 ms vs "
              "563.2 ms at 4 groups and 38.7 ms vs 3412.8 ms at 32 groups",
              fuzzed=fuzzed_line("290 configurations: rank 1-3, kernel 1-4, strides 1-3, kernel "
                                 "dilation 1-2, input dilation 1-2, groups 2-3, channels 2-144, "
                                 "batch 1-3")),
    PolicyRow("cpu", ANY, "canonical",
              "lax's conv with both gradients as channels-last forward convs: the same sums "
              "and speed in one step, and inside lax.scan, where autodiff's gradient convs "
              "miss XLA:CPU's fast path, a training step of the resnet_bottleneck bench net "
              "measured 3,868 ms with autodiff's and 529 ms with these in a 4-step scan, 727 ms "
              "as one step per call (experiments/results/fit_cpu_avx2.md, AMD EPYC AVX2)",
              fuzzed=fuzzed_line("234 configurations: rank 1-3, kernel 1-4, strides 1-3, kernel "
                                 "dilation 1-2, input dilation 1, groups 1, channels 1-36, batch "
                                 "1-3")),
)

#: The measurements behind the ``onednn`` rows (`experiments/onednn_policy.py`: forward and
#: both gradients, float32, quiet machine, Intel Xeon with AVX-512 and AMX, 2 cores, oneDNN
#: 3.2), and the fuzz runs of that formulation (1,150 cases of seed 11, 200 wide ones of seed
#: 12, 300 wide ones on large maps of seed 13 and 300 wide 1x1s on larger maps of seed 14,
#: float32 and bfloat16; `experiments/fuzz_cpu.sh`).
ONEDNN_TIMINGS = "experiments/results/onednn_policy_avx512.md"
ONEDNN_FUZZ = ("experiments/results/fuzz_onednn.md", "experiments/results/fuzz_onednn_wide.md",
               "experiments/results/fuzz_onednn_wide_large.md",
               "experiments/results/fuzz_onednn_pointwise.md")
#: The runs of `ONEDNN_FUZZ`: (cases, seed, wide, large, pointwise).
ONEDNN_FUZZ_RUNS = ((1150, 11, False, False, False), (200, 12, True, False, False),
                    (300, 13, True, True, False), (300, 14, False, False, True))
#: The measured range of the ``onednn`` rows, which they keep to. Output pixels per example:
#: oneDNN won every depthwise and grouped case from 7x7 (49) up, and every dense one from 14x14
#: (196) up but lost at 7x7 with 32 channels, so dense convs start at 196. Channels: the dense
#: cases reached 128 (in and out).
ONEDNN_MIN_PIXELS = 49
ONEDNN_DENSE_MIN_PIXELS = 196
ONEDNN_DENSE_MAX_CHANNELS = 128


def onednn_measured(spec: ConvSpec) -> bool:
    """Whether the native extension runs here (built, loaded, not switched off) on the CPU
    class the ``onednn`` rows were measured on (x86 with AVX-512)."""
    return machine.isa() == "avx512" and native.available()


def _output_pixels(spec: ConvSpec) -> int:
    return math.prod(spec.output_shape[1:-1])


def onednn_grouped(spec: ConvSpec) -> bool:
    """`onednn_measured`, on maps of at least `ONEDNN_MIN_PIXELS` output pixels (depthwise and
    grouped convs)."""
    return onednn_measured(spec) and _output_pixels(spec) >= ONEDNN_MIN_PIXELS


def onednn_dense(spec: ConvSpec) -> bool:
    """`onednn_measured`, on maps of at least `ONEDNN_DENSE_MIN_PIXELS` output pixels with at
    most `ONEDNN_DENSE_MAX_CHANNELS` channels in and out."""
    return (onednn_measured(spec) and _output_pixels(spec) >= ONEDNN_DENSE_MIN_PIXELS
            and max(spec.in_channels, spec.out_channels) <= ONEDNN_DENSE_MAX_CHANNELS)


def onednn_fuzzed_line(shapes: str) -> str:
    """An ``onednn`` row's ``fuzzed`` line (see `fuzzed_line`)."""
    return f"{shapes}; on an AVX-512 CPU ({', '.join(ONEDNN_FUZZ)})"


def _onednn_row(shape_class: str, reason: str, when: Callable[[ConvSpec], bool],
                fuzzed: str) -> PolicyRow:
    return PolicyRow("cpu", shape_class, "onednn", f"{reason} ({ONEDNN_TIMINGS})", when=when,
                     fuzzed=onednn_fuzzed_line(fuzzed), dtypes=("float32",))


_ONEDNN_DEPTHWISE = _onednn_row(
    "depthwise", "oneDNN's depthwise kernels, forward and both gradients, measured 3.2 ms vs "
    "shift's 8.7 ms (3x3, C=128, 16x16, batch 64), 17.9 vs 36.6 ms (7x7) and 0.33-0.38x on the "
    "study nets' 14x14 maps at batch 128 (7x7 outputs: 0.37x)", onednn_grouped,
    "60 configurations: rank 2-3, kernel 1-4, strides 1-3, kernel dilation 1-2, input dilation "
    "1, groups 2-64, channels 2-88, batch 1-3")
_ONEDNN_GROUPED = _onednn_row(
    "grouped", "oneDNN's grouped kernels measured 12.6 ms vs split's 47.4 ms (3x3 128->128 g=4, "
    "16x16, batch 64), 7.9 vs 72.6 ms (g=32), 0.22-0.51x on the study nets' 14x14 and 7x7 maps",
    onednn_grouped,
    "56 configurations: rank 2-3, kernel 1-4, strides 1-3, kernel dilation 1-2, input dilation "
    "1, groups 2-3, channels 2-144, batch 1-3")

#: Version 2: oneDNN's kernels where the native extension runs on an AVX-512 CPU, for the
#: classes and sizes where they measured faster than version 1's pick; version 1's rows after.
#: 1x1 convs stay matmul's: oneDNN was faster at 64-128 input channels (0.68-0.93x) but slower
#: at 24 (1.42x), and no fuzz run reached 64 channels.
CONV_POLICY_V2: tuple[PolicyRow, ...] = (
    _ONEDNN_DEPTHWISE,
    _ONEDNN_GROUPED,
    _onednn_row("dense", "oneDNN's direct and brgemm kernels measured 0.19-0.53x the time of "
                "version 1's pick (canonical, depth_taps) on every dense case from 14x14 maps "
                "up (3x3 64->64 32x32: 47.5 vs 213.2 ms; 3-D 3x3x3 16^3: 16.5 vs 77.8 ms; 1-D "
                "k=5: 27.4 vs 51.3 ms; 16-128 channels), but 1.12x on a 7x7 map", onednn_dense,
                "17 configurations: rank 2-3, kernel 1-4, strides 1-3, kernel dilation 1-2, "
                "input dilation 1, groups 1, channels 1-45, batch 1-3"),
    *CONV_POLICY_V1,
)

#: Version 3's range for 1x1 convs (the bench nets' section of `ONEDNN_TIMINGS`, two runs,
#: 2-D): oneDNN took 0.36-0.69x matmul's time on every 1x1 that keeps or narrows the width onto
#: a map of 14x14 or more, and 0.54-0.93x on every widening one from a 28x28 map onto 14x14 or
#: more. Widening 1x1s from 14x14 maps (0.66-1.52x) and 1x1s onto 7x7 maps (0.53-3.92x) varied
#: between the runs and stay matmul's; so do 1-D and 3-D 1x1s (not timed). Channels: the cases
#: the row takes reached 128.
ONEDNN_POINTWISE_MIN_PIXELS = 196
ONEDNN_POINTWISE_WIDEN_MIN_PIXELS = 784
ONEDNN_POINTWISE_MAX_CHANNELS = 128


def _input_pixels(spec: ConvSpec) -> int:
    return math.prod(spec.input_shape[1:-1])


def onednn_pointwise(spec: ConvSpec) -> bool:
    """`onednn_measured`, for unpadded 2-D 1x1 convs with at most
    `ONEDNN_POINTWISE_MAX_CHANNELS` channels in and out onto maps of at least
    `ONEDNN_POINTWISE_MIN_PIXELS` output pixels, from input maps of at least
    `ONEDNN_POINTWISE_WIDEN_MIN_PIXELS` pixels where they widen."""
    widens = spec.out_channels > spec.in_channels
    return (onednn_measured(spec) and spec.rank == 2 and not any(map(any, spec.padding))
            and _output_pixels(spec) >= ONEDNN_POINTWISE_MIN_PIXELS
            and (not widens or _input_pixels(spec) >= ONEDNN_POINTWISE_WIDEN_MIN_PIXELS)
            and max(spec.in_channels, spec.out_channels) <= ONEDNN_POINTWISE_MAX_CHANNELS)


def onednn_dense_input(spec: ConvSpec) -> bool:
    """`onednn_dense`, or a strided 2-D conv from an input map of at least
    `ONEDNN_DENSE_MIN_PIXELS` pixels onto one of at least `ONEDNN_MIN_PIXELS` (a 3x3 stride 2
    from 14x14 onto 7x7, as measured)."""
    return onednn_dense(spec) or (
        onednn_measured(spec) and spec.rank == 2 and any(s > 1 for s in spec.strides)
        and _input_pixels(spec) >= ONEDNN_DENSE_MIN_PIXELS
        and _output_pixels(spec) >= ONEDNN_MIN_PIXELS
        and max(spec.in_channels, spec.out_channels) <= ONEDNN_DENSE_MAX_CHANNELS)


#: Version 3: version 2 with 2-D 1x1 convs on oneDNN (`onednn_pointwise`), and dense convs from
#: 14x14 input maps onto 7x7 ones (`onednn_dense_input`: 0.35-0.56x of canonical's time).
CONV_POLICY_V3: tuple[PolicyRow, ...] = (
    _onednn_row("pointwise", "oneDNN's 1x1 kernels measured 0.36-0.69x matmul's time on 1x1s "
                "that keep or narrow the width onto 14x14 maps or more (1x1 64->16, 28x28, "
                "batch 128: 5.1 vs 12.7 ms; 128->48, 14x14: 4.5 vs 10.3 ms) and 0.54-0.93x on "
                "widening ones from 28x28 maps, forward and both gradients (matmul's kernel "
                "gradient transposes the input in memory)", onednn_pointwise,
                "34 configurations: rank 2, kernel 1, strides 1-3, kernel dilation 1, "
                "input dilation 1, groups 1, channels 8-128, batch 1-3"),
    _ONEDNN_DEPTHWISE,
    _ONEDNN_GROUPED,
    _onednn_row("dense", "oneDNN's direct and brgemm kernels, as in version 2, and from 14x14 "
                "input maps onto 7x7 ones: 3x3 stride 2 measured 0.35-0.56x of canonical's time "
                "(32->64 and 48->48, batch 128)",
                onednn_dense_input,
                "31 configurations: rank 2-3, kernel 1-4, strides 1-3, kernel dilation 1-2, "
                "input dilation 1, groups 1, channels 1-48, batch 1-3"),
    *CONV_POLICY_V1,
)

#: Every version's forward-conv rows: a version's rows never change once a run recorded it.
#: Version 4 keeps version 3's and adds `native_batch_norm`.
CONV_POLICIES: dict[int, tuple[PolicyRow, ...]] = {1: CONV_POLICY_V1, 2: CONV_POLICY_V2,
                                                     3: CONV_POLICY_V3, 4: CONV_POLICY_V3}
#: The current version's rows.
CONV_POLICY = CONV_POLICIES[POLICY_VERSION]


#: The first policy version whose BatchNorm sums its channels natively (`native_batch_norm`).
NATIVE_BATCH_NORM_SINCE = 4


def native_batch_norm(compilation: Any, dtype: Any) -> bool:
    """Whether `jaxconv.functional.batch_norm` sums its channels with the native extension
    (`jaxconv.functional.channel_sums`) under ``compilation``'s policy version: from version
    `NATIVE_BATCH_NORM_SINCE`, for float32, where the extension is loaded, on the CPU class it
    was measured on (AVX-512) and the CPU backend. Earlier versions reduce with ``lax``, so a
    study pinned to one keeps its numbers. Measured there: the bench nets' training steps
    1.08x (ResNet) and 1.20x (MobileNetV2) faster than with version 3's lax reductions, every
    round (`experiments/results/onednn_next_levers_avx512.md`).

    Raises:
      ValueError: the compilation names a policy version this jaxconv does not have.
    """
    version = getattr(compilation, "policy_version", None)
    version = POLICY_VERSION if version is None else version
    if version not in CONV_POLICIES:
        raise ValueError(f"batch_norm: Compilation(policy_version={version}) is not a policy "
                         f"version of this jaxconv; expected one of "
                         f"{', '.join(map(str, CONV_POLICIES))}")
    return (version >= NATIVE_BATCH_NORM_SINCE and jnp.dtype(dtype) == jnp.float32
            and jax.default_backend() == "cpu" and machine.isa() == "avx512"
            and native.available())


def version_rows(policies: Mapping[int, tuple[PolicyRow, ...]], spec: ConvSpec,
                 op: str) -> tuple[PolicyRow, ...]:
    """The rows of the policy version ``spec``'s compilation names (the current one for
    ``None``).

    Raises:
      ValueError: no such version.
    """
    version = spec.compilation.policy_version
    version = POLICY_VERSION if version is None else version
    if version not in policies:
        raise ValueError(f"{op}: Compilation(policy_version={version}) is not a policy version "
                         f"of this jaxconv; expected one of {', '.join(map(str, policies))}")
    return policies[version]


@dataclasses.dataclass(frozen=True)
class Plan:
    """What an op would compute with, and why.

    Attributes:
      op: the op's name (``"conv"``, ``"depthwise_conv"``, ...).
      impl: the chosen formulation.
      reason: why it was chosen.
      backend: the backend the choice was made for.
      shape_class: ``"pointwise"``, ``"depthwise"``, ``"grouped"`` or ``"dense"``.
      candidates: every formulation of the op, mapped to ``None`` when it can express the call
        and to the reason when it cannot.
      spec: the resolved convolution.
      fuzzed: for a choice of the ``auto`` policy, the shapes the formulation fuzz checked
        that choice on.
    """

    op: str
    impl: str
    reason: str
    backend: str
    shape_class: str
    candidates: Mapping[str, str | None]
    spec: ConvSpec
    fuzzed: str = ""

    def __str__(self) -> str:
        lines = [f"{self.op}: impl={self.impl!r} ({self.reason})",
                 f"  backend={self.backend}, shape class={self.shape_class}, "
                 f"output shape={self.spec.output_shape}"]
        if self.fuzzed:
            lines.append(f"  fuzzed: {self.fuzzed}")
        for name, why in self.candidates.items():
            lines.append(f"  {name:>8}: {'can express this call' if why is None else why}")
        return "\n".join(lines)


def candidates(table: Mapping[str, Formulation], spec: ConvSpec,
               dtype: Any = jnp.float32) -> dict[str, str | None]:
    """Each formulation of ``table``, mapped to ``None`` when it can compute ``spec`` on
    arrays of ``dtype``, else to the reason it cannot.

    Args:
      table: the op's formulations by name.
      spec: the resolved conv.
      dtype: the operands' dtype.

    Returns:
      ``{name: None or reason}``, in ``table``'s order.
    """
    def why(f: Formulation) -> str | None:
        reason = f.unsupported(spec)
        if reason is None and f.unsupported_dtype is not None:
            reason = f.unsupported_dtype(dtype)
        return reason
    return {name: why(f) for name, f in table.items()}


def choose(
    op: str, table: Mapping[str, Formulation],
    policies: Mapping[int, tuple[PolicyRow, ...]], spec: ConvSpec,
    impl: str | Callable, backend: str | None = None, dtype: Any = jnp.float32,
    kernel_shape: tuple[int, ...] | None = None,
) -> tuple[Callable, Plan]:
    """The compute function for ``impl`` and the `Plan` that explains it.

    ``policies`` holds the op's rows per policy version; ``auto`` reads those of the version
    ``spec.compilation`` names (`version_rows`). ``dtype`` and ``kernel_shape`` (in the op's
    layout; ``spec.kernel_shape`` when ``None``) describe the arrays ``impl="autotune"``
    measures with.

    Raises:
      ValueError: ``impl`` is unknown, or cannot express the call (the message lists those that
        can), or the policy version is unknown.
    """
    backend = backend or jax.default_backend()
    rows = version_rows(policies, spec, op)
    able = candidates(table, spec, dtype)
    if callable(impl):
        plan = Plan(op, "xla", f"custom conv_general_dilated {getattr(impl, '__name__', impl)}",
                    backend, spec.shape_class, able, spec)
        return lambda x, k, s: xla(x, k, s, conv_general_dilated=impl), plan
    if not isinstance(impl, str):
        raise TypeError(f"impl={impl!r} must be 'auto', 'autotune', a formulation name or a "
                        "callable")
    if impl in ("auto", "autotune") and spec.input_shape[0] == 0:
        plan = Plan(op, "xla", "an empty batch: nothing to compute or to time", backend,
                    spec.shape_class, able, spec)
        return table["xla"].compute, plan
    if impl == "autotune" or (impl == "auto" and autotune.enabled()):
        fuzzed = {name: why for name, why in able.items() if name not in UNFUZZED}
        name, reason = autotune.fastest(op, table, spec, fuzzed, backend, dtype,
                                        kernel_shape or spec.kernel_shape)
        return table[name].compute, Plan(op, name, reason, backend, spec.shape_class, able, spec)
    if impl == "auto":
        for row in rows:
            if row.applies(spec, backend, dtype) and able.get(row.impl, "unknown") is None:
                plan = Plan(op, row.impl, row.reason, backend, spec.shape_class, able, spec,
                            row.fuzzed)
                return table[row.impl].compute, plan
        plan = Plan(op, "xla", f"no faster formulation is known for a {spec.shape_class} "
                    f"{op} on {backend}", backend, spec.shape_class, able, spec)
        return table["xla"].compute, plan
    if impl not in table:
        raise ValueError(f"impl={impl!r} is not a formulation of {op}; expected 'auto', "
                         f"'autotune' or one of {', '.join(map(repr, table))}")
    if able[impl] is not None:
        can = [name for name, why in able.items() if why is None]
        raise ValueError(
            f"impl={impl!r} cannot express this {op}: {able[impl]}; formulations that can: "
            f"{', '.join(map(repr, ['auto', 'autotune', *can]))}")
    plan = Plan(op, impl, "asked for by the caller", backend, spec.shape_class, able, spec)
    return table[impl].compute, plan
