"""What every formulation shares: the resolved convolution (`ConvSpec`), the compiled program
it is traced into (`Compilation`), the `Formulation` record, and the small array helpers
(zero padding, kernel taps, accumulator dtypes) that more than one formulation uses.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax.numpy as jnp
from jax import lax

from jaxconv.typing import Array, Pads, Shape

#: Largest patch (kernel taps x input channels) of a "narrow" conv: 3x3 on RGB is 27.
NARROW_PATCH = 32


@dataclasses.dataclass(frozen=True)
class Compilation:
    """Facts about the compiled program an op is traced into that change how it is computed.

    Ops cannot see how the function they are traced in will be compiled, so a caller that
    compiles with options of its own, or shards the batch over devices, says so here; it is
    an explicit argument of every op (``compilation=``) and part of the traced program's
    identity, never a setting read from the environment at trace time. `jaxconv.train`'s
    steps pass the one they compile with; ``None`` means `Compilation()`.

    Attributes:
      compiler_options: the ``jax.jit(compiler_options=...)`` of the program, as sorted
        ``(name, value)`` pairs (a mapping is accepted and sorted).
      batch_shards: how many equal contiguous parts the batch is split into, one per device (a
        batch sharded along one mesh axis). Formulations that loop over the batch then take a
        part of every shard per step, so no device gathers another's activations.
      policy_version: the version of ``impl="auto"``'s policy rows to pick formulations by
        (`jaxconv.functional.policy.POLICIES`); ``None`` is the current one. A study pins it,
        so that a later policy neither changes its numbers nor stops it from resuming.

    >>> Compilation({"b": "2", "a": "1"}, batch_shards=4).compiler_options
    (('a', '1'), ('b', '2'))
    """

    compiler_options: tuple[tuple[str, str], ...] | Mapping[str, str] = ()
    batch_shards: int = 1
    policy_version: int | None = None

    def __post_init__(self):
        options = self.compiler_options
        if isinstance(options, Mapping):
            options = options.items()
        object.__setattr__(self, "compiler_options",
                           tuple(sorted((str(k), str(v)) for k, v in options)))
        shards = self.batch_shards
        if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
            raise ValueError(f"Compilation: batch_shards={self.batch_shards!r}; expected a "
                             "positive int (the number of devices the batch is split over)")
        version = self.policy_version
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                                    or version < 1):
            raise ValueError(f"Compilation: policy_version={version!r}; expected None (the "
                             "current policy) or a policy version, a positive int")

    def option(self, name: str) -> str | None:
        """The value of compiler option ``name``, or ``None`` when the program does not set
        it."""
        return dict(self.compiler_options).get(name)


DEFAULT_COMPILATION = Compilation()


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """A forward convolution with every argument resolved; what a formulation computes.

    Attributes:
      input_shape: the batched input, ``(B, *spatial, C_in)``, after any non-zero fill.
      kernel_shape: ``(*kernel_spatial, C_in // groups, C_out)``.
      padding: zero padding, one ``(low, high)`` pair per spatial dim.
      compilation: the program the conv is traced into (`Compilation`).
    """

    input_shape: Shape
    kernel_shape: Shape
    strides: Shape
    padding: Pads
    input_dilation: Shape
    kernel_dilation: Shape
    feature_group_count: int
    precision: Any = None
    preferred_element_type: Any = None
    compilation: Compilation = DEFAULT_COMPILATION

    @property
    def rank(self) -> int:
        return len(self.kernel_shape) - 2

    @property
    def in_channels(self) -> int:
        return self.input_shape[-1]

    @property
    def out_channels(self) -> int:
        return self.kernel_shape[-1]

    @property
    def window(self) -> Shape:
        """Spatial extent of the dilated kernel."""
        return tuple((k - 1) * d + 1 for k, d in
                     zip(self.kernel_shape[:-2], self.kernel_dilation))

    @property
    def output_shape(self) -> Shape:
        spatial = []
        for n, (lo, hi), w, s, di in zip(self.input_shape[1:-1], self.padding, self.window,
                                         self.strides, self.input_dilation):
            span = (n - 1) * di + 1 + lo + hi - w
            spatial.append(span // s + 1 if span >= 0 else 0)
        return (self.input_shape[0], *spatial, self.out_channels)

    @property
    def is_pointwise(self) -> bool:
        return all(k == 1 for k in self.kernel_shape[:-2])

    @property
    def is_depthwise(self) -> bool:
        return self.feature_group_count > 1 and self.feature_group_count == self.in_channels

    @property
    def patch_size(self) -> int:
        """Input values one output pixel reads per group: kernel taps x input channels."""
        return math.prod(self.kernel_shape[:-2]) * self.kernel_shape[-2]

    @property
    def shape_class(self) -> str:
        """The class the ``auto`` policy keys on: pointwise, grouped_pointwise, depthwise,
        grouped, narrow (a dense conv reading at most `NARROW_PATCH` values per output pixel,
        like a 3x3 stem on grey or RGB images) or dense."""
        if self.is_pointwise:
            return "pointwise" if self.feature_group_count == 1 else "grouped_pointwise"
        if self.is_depthwise:
            return "depthwise"
        if self.feature_group_count > 1:
            return "grouped"
        return "narrow" if self.patch_size <= NARROW_PATCH else "dense"

    def macs(self) -> int:
        """Multiply-accumulates of the textbook count (every tap of every window)."""
        return math.prod(self.output_shape) * self.patch_size

    def with_batch(self, batch: Any) -> ConvSpec:
        """The same conv on a batch of ``batch`` inputs."""
        return dataclasses.replace(self, input_shape=(batch, *self.input_shape[1:]))


@dataclasses.dataclass(frozen=True)
class Formulation:
    """One way to compute a `ConvSpec`.

    Attributes:
      name: the ``impl=`` string.
      compute: ``(x, kernel, spec) -> y`` on a batched input padded with zeros by ``spec``.
      unsupported: ``spec -> reason`` it cannot express the spec, or ``None`` when it can.
      description: one line for `plan` and the docs.
      unsupported_dtype: ``dtype -> reason`` it cannot compute arrays of that dtype here, or
        ``None`` when it can; ``None`` for a formulation that takes every dtype lax does.
    """

    name: str
    compute: Callable[[Array, Array, ConvSpec], Array]
    unsupported: Callable[[ConvSpec], str | None]
    description: str
    unsupported_dtype: Callable[[Any], str | None] | None = None


def dimension_numbers(rank: int) -> lax.ConvDimensionNumbers:
    """Channels-last input/output and ``(*spatial, I, O)`` kernel, for any spatial rank."""
    lhs = (0, rank + 1, *range(1, rank + 1))
    rhs = (rank + 1, rank, *range(rank))
    return lax.ConvDimensionNumbers(lhs, rhs, lhs)


def zero_pad(x: Array, padding: Pads) -> Array:
    """``x`` padded with zeros on its spatial dims (a no-op without padding)."""
    if not any(lo or hi for lo, hi in padding):
        return x
    return lax.pad(x, x.dtype.type(0), ((0, 0, 0), *((lo, hi, 0) for lo, hi in padding),
                                        (0, 0, 0)))


def taps(spec: ConvSpec) -> Iterator[tuple[int, tuple[int, ...]]]:
    """``(tap index, offset)`` of each kernel tap: where its view starts in the padded input."""
    for index, tap in enumerate(itertools.product(*(range(k) for k in spec.kernel_shape[:-2]))):
        yield index, tuple(t * d for t, d in zip(tap, spec.kernel_dilation))


def padded_view(x: Array, offset: tuple[int, ...], spec: ConvSpec) -> Array:
    """One tap's strided view of the already zero-padded input."""
    limit = [o + (n - 1) * s + 1 for o, n, s in zip(offset, spec.output_shape[1:-1],
                                                    spec.strides)]
    return lax.slice(x, (0, *offset, 0), (x.shape[0], *limit, x.shape[-1]),
                     (1, *spec.strides, 1))


def accumulator(dtype: Any) -> Any:
    """The dtype to sum products of ``dtype`` in: float32 for floats narrower than 32 bits
    (their products are exact there), the dtype itself otherwise (integers included)."""
    if jnp.issubdtype(dtype, jnp.floating) and jnp.finfo(dtype).bits < 32:
        return jnp.float32
    return dtype


def is_empty(spec: ConvSpec) -> bool:
    """Whether the conv has no output (an empty batch or spatial dim); a symbolic batch
    counts as non-empty."""
    batch = spec.input_shape[0]
    return (isinstance(batch, int) and batch == 0) or any(o == 0 for o in spec.output_shape[1:])


def unsupported_input_dilation(spec: ConvSpec) -> str | None:
    """Why a formulation that reads the input without inserted zeros cannot take ``spec``."""
    if any(d != 1 for d in spec.input_dilation):
        return f"input_dilation={spec.input_dilation}"
    return None


def unsupported_lax_extras(spec: ConvSpec) -> str | None:
    """Why a formulation of plain, same-dtype convolutions cannot take ``spec``: input
    dilation or a ``preferred_element_type``."""
    if any(d != 1 for d in spec.input_dilation):
        return f"input_dilation={spec.input_dilation}"
    if spec.preferred_element_type is not None:
        return f"preferred_element_type={spec.preferred_element_type}"
    return None


def unsupported_dense(spec: ConvSpec, what: str) -> str | None:
    """Why a formulation for dense convs without input dilation (``what``) cannot take
    ``spec``."""
    if spec.feature_group_count != 1:
        return f"feature_group_count={spec.feature_group_count} ({what} are for dense convs)"
    return unsupported_input_dilation(spec)
