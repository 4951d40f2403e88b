"""Numerically equivalent formulations of a convolution, and the table `impl=` chooses from.

A `ConvSpec` is a forward convolution with every argument resolved (explicit zero padding, one
int per spatial dim). A `Formulation` computes a `ConvSpec` on a batched ``(B, *spatial, C)``
input and says, for a spec it cannot express, why not. One module per family of formulations;
adding one is adding a function and a row to `CONV`, and `jaxconv.functional.policy` decides
which row ``impl="auto"`` takes.

``"xla"`` is always `jax.lax.conv_general_dilated`, the reference every other formulation is
pinned to by the tests. Formulations with a backward pass of their own (``canonical``,
``matmul``, ``shift``, and those built on them) are bilinear primitives
(`jaxconv.functional.formulations.primitive`), so every JAX transform works through them;
``onednn``, the native one, is a primitive of its own whose lowerings on the CPU are FFI calls
(`jaxconv.functional.formulations.onednn`).
"""

from jaxconv.functional.formulations.channel_matmul import matmul, unsupported_matmul
from jaxconv.functional.formulations.dense import (
    depth_taps,
    patches,
    row_taps,
    split,
    unsupported_depth_taps,
    unsupported_patches,
    unsupported_row_taps,
    unsupported_split,
    ynnpack_takes,
)
from jaxconv.functional.formulations.depthwise_taps import shift, unsupported_shift
from jaxconv.functional.formulations.lax_conv import canonical, unsupported_canonical, xla
from jaxconv.functional.formulations.onednn import onednn, unsupported_dtype, unsupported_onednn
from jaxconv.functional.formulations.spec import (
    NARROW_PATCH,
    Compilation,
    ConvSpec,
    Formulation,
    accumulator,
)

#: Forward-convolution formulations, by ``impl=`` name.
CONV: dict[str, Formulation] = {
    f.name: f for f in (
        Formulation("xla", xla, lambda spec: None,
                    "jax.lax.conv_general_dilated, the reference"),
        Formulation("canonical", canonical, unsupported_canonical,
                    "lax.conv_general_dilated, gradients as channels-last forward convs"),
        Formulation("matmul", matmul, unsupported_matmul,
                    "1x..x1 kernel as subsample + dot_general over channels"),
        Formulation("shift", shift, unsupported_shift,
                    "depthwise conv as one shifted multiply-add per kernel tap"),
        Formulation("split", split, unsupported_split,
                    "grouped conv as one dense conv per group, concatenated"),
        Formulation("patches", patches, unsupported_patches,
                    "dense conv as im2col patches + one matmul"),
        Formulation("depth_taps", depth_taps, unsupported_depth_taps,
                    "3-D conv as one 2-D conv over the depth taps laid along the channels"),
        Formulation("row_taps", row_taps, unsupported_row_taps,
                    "2-D conv as one 1-D conv over the row taps laid along the channels"),
        Formulation("onednn", onednn, unsupported_onednn,
                    "oneDNN's CPU convolution and its backward through XLA's FFI (native)",
                    unsupported_dtype),
    )
}
"""Forward-convolution formulations by ``impl=`` name: ``xla`` (the reference), ``canonical``,
``matmul``, ``shift``, ``split``, ``patches``, ``depth_taps``, ``row_taps`` and ``onednn`` (the
native one, where its extension is built). `jaxconv.functional.plan` lists which can express a
call; the policy (`jaxconv.functional.policy`) says which ``impl="auto"`` takes.

>>> sorted(CONV)[:3]
['canonical', 'depth_taps', 'matmul']
"""

#: Formulations ``autotune`` never times (`jaxconv.bench.fuzz` runs them only when named):
#: ``onednn`` exists only where its native extension was built, and ``auto`` takes it only
#: through the policy rows of versions 2 and 3, which its own fuzz runs cover.
UNFUZZED = frozenset({"onednn"})

__all__ = ["CONV", "NARROW_PATCH", "UNFUZZED", "Compilation", "ConvSpec", "Formulation",
           "accumulator", "canonical", "matmul", "shift", "xla", "ynnpack_takes"]
