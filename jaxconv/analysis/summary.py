"""`summary(model, input_shape)`: one row per layer with shapes, parameters, MACs and FLOPs.

The forward pass is traced abstractly (`jax.eval_shape`, nothing is computed; an abstract model
from `flax.nnx.eval_shape` works too) on a copy of the model in eval mode; while it runs, the
leaf layers of that copy stand behind wrappers that record their input and output shapes (no
class is patched). Each layer's XLA FLOPs come from lowering that layer alone
(`jax.stages.Lowered.cost_analysis`, no compilation). See `jaxconv.analysis.costs` for the two
FLOP conventions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv.analysis import _wrap
from jaxconv.analysis.costs import LEAF_TYPES, layer_cost, n_params


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One leaf layer of a model, as called on the summary's input.

    Attributes:
      macs: textbook multiply-accumulates (every tap of every window).
      xla_flops: XLA ``cost_analysis`` FLOPs of this layer alone (in-bounds taps only).
      activation_bytes: bytes of this layer's output.
    """

    path: str
    layer: str
    impl: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...] | None
    params: int
    macs: int
    xla_flops: float
    activation_bytes: int


@dataclasses.dataclass(frozen=True)
class Summary:
    """Rows per layer plus whole-model totals.

    ``params`` counts every parameter of the model (also those outside leaf layers, such as
    ConvNeXt's layer scale); ``xla_flops`` is the whole forward pass lowered at once.

    Attributes:
      rows: one `LayerRow` per leaf layer, in call order.
      input_shape: one example's shape.
      params: every parameter of the model.
      macs: textbook multiply-accumulates of the forward pass.
      xla_flops: XLA's FLOPs of the whole forward pass.
      activation_bytes: bytes of every leaf layer's output, summed.
    """

    rows: tuple[LayerRow, ...]
    input_shape: tuple[int, ...]
    params: int
    macs: int
    xla_flops: float
    activation_bytes: int

    def table(self) -> str:
        header = ("path", "layer", "impl", "input", "output", "kernel", "params", "MACs",
                  "XLA FLOPs", "act. bytes")
        body = [(r.path, r.layer, r.impl, _shape(r.input_shape), _shape(r.output_shape),
                 _shape(r.kernel_shape) if r.kernel_shape else "-", f"{r.params:,}",
                 f"{r.macs:,}", f"{r.xla_flops:,.0f}", f"{r.activation_bytes:,}")
                for r in self.rows]
        total = ("total", "", "", _shape(self.input_shape), "", "", f"{self.params:,}",
                 f"{self.macs:,}", f"{self.xla_flops:,.0f}", f"{self.activation_bytes:,}")
        widths = [max(len(row[i]) for row in (header, *body, total)) for i in range(len(header))]
        right = {6, 7, 8, 9}

        def line(row):
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(row, widths))).rstrip()

        rule = "-" * len(line(header))
        notes = ("MACs: textbook count, every tap of every window. XLA FLOPs: cost_analysis, "
                 "2 per multiply-add on in-bounds taps only, plus norms and activations; the "
                 "total is the whole forward pass.")
        return "\n".join([line(header), rule, *map(line, body), rule, line(total), notes])


def _shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def _watch(model: nnx.Module, records: list) -> None:
    """Replaces every leaf layer of ``model`` (a throwaway copy) by a `Watched` that appends
    ``(path, input, output)`` as abstract arrays to ``records``."""
    for path, module in list(nnx.iter_modules(model)):
        if isinstance(module, LEAF_TYPES):
            def seen(x, y, path=path):
                records.append((path, jax.ShapeDtypeStruct(x.shape, x.dtype),
                                jax.ShapeDtypeStruct(y.shape, y.dtype)))
            _wrap.replace(model, path, _wrap.Watched(module, seen))


def _xla_flops(module: nnx.Module, x: jax.ShapeDtypeStruct) -> float:
    graphdef, state = nnx.split(module)
    lowered = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x)).lower(state, x)
    return float(lowered.cost_analysis().get("flops", 0.0))


def summary(model: nnx.Module, input_shape: Sequence[int], *, batch: int = 1,
            dtype=jnp.float32, layer_xla_flops: bool = True) -> Summary:
    """Per-layer table of a model for one input shape.

    Args:
      model: any NNX module whose layers are jaxconv / Flax NNX layers; its parameters may be
        abstract (`flax.nnx.eval_shape`), since nothing is computed.
      input_shape: one example's shape, e.g. ``(28, 28, 1)``.
      batch: examples per call (counts scale with it).
      layer_xla_flops: lower each layer alone for its row's XLA FLOPs; ``False`` leaves the
        rows' ``xla_flops`` NaN and saves a lowering per layer (about a second per model on
        2 CPU cores) where only the totals are needed.

    Returns:
      A `Summary`; ``print(s.table())`` renders it.
    """
    model = nnx.clone(model)
    model.eval()
    graphdef, state = nnx.split(model)
    x = jax.ShapeDtypeStruct((batch, *input_shape), dtype)
    records: list = []

    def forward(state, x):
        merged = nnx.merge(graphdef, state)
        _watch(merged, records)
        return merged(x)

    jax.eval_shape(forward, state, x)
    modules = dict(nnx.iter_modules(model))
    rows = []
    for path, xin, y in records:
        module = modules[path]
        cost = layer_cost(module, xin.shape, y.shape)
        rows.append(LayerRow(
            path=".".join(map(str, path)), layer=type(module).__name__, impl=cost.impl,
            input_shape=tuple(xin.shape), output_shape=tuple(y.shape),
            kernel_shape=cost.kernel_shape, params=n_params(module), macs=cost.macs,
            xla_flops=_xla_flops(module, xin) if layer_xla_flops else math.nan,
            activation_bytes=math.prod(y.shape) * jnp.dtype(y.dtype).itemsize))
    return Summary(rows=tuple(rows), input_shape=tuple(x.shape), params=n_params(model),
                   macs=sum(r.macs for r in rows), xla_flops=_xla_flops(model, x),
                   activation_bytes=sum(r.activation_bytes for r in rows))
