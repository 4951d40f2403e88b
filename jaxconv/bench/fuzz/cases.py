"""The fuzz's cases: random convolutions, the same for the same seed, and the formulations
that claim each one. Nothing here runs a convolution (`jaxconv.bench.fuzz.check` does)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

DTYPES = ("float32", "bfloat16")
PADDINGS = ("SAME", "VALID", "CAUSAL", "int", "pairs", "CIRCULAR", "REFLECT", "REPLICATE",
            "mode")


@dataclasses.dataclass(frozen=True)
class Case:
    """One random convolution: the op, operand shapes, keyword arguments, and a data seed."""

    index: int
    op: str
    kind: str
    x_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    kwargs: dict[str, Any]
    seed: int

    def reproducer(self, impl: str, dtype: str) -> str:
        call = "F.conv" if self.op == "conv" else "F.conv_transpose"
        return "\n".join([
            "import jax, jax.numpy as jnp, numpy as np",
            "import jaxconv.functional as F",
            f"rng = np.random.default_rng({self.seed})",
            f"x = jnp.asarray(rng.standard_normal({self.x_shape}), jnp.{dtype})",
            f"k = jnp.asarray(rng.standard_normal({self.kernel_shape}), jnp.{dtype})",
            f"f = lambda a, b: {call}(a, b, impl={impl!r}, **{self.kwargs!r})",
            "print(jax.jit(jax.grad(lambda a, b: jnp.sum(f(a, b).astype(jnp.float32) ** 2),",
            "                       argnums=(0, 1)))(x, k))"])


def _dims(rng: np.random.Generator, rank: int, low: int, high: int) -> list[int]:
    return [int(v) for v in rng.integers(low, high + 1, rank)]


def _padding(rng: np.random.Generator, rank: int, op: str) -> dict[str, Any]:
    forms = PADDINGS if op == "conv" else PADDINGS[:5]
    form = forms[rng.integers(len(forms))]
    if form == "int":
        return {"padding": int(rng.integers(0, 3))}
    if form == "pairs":
        return {"padding": [_dims(rng, 2, 0, 2) for _ in range(rank)]}
    if form == "mode":
        mode = ("circular", "reflect", "replicate")[rng.integers(3)]
        return {"padding": _dims(rng, rank, 0, 2), "padding_mode": mode}
    if form == "CAUSAL" and op != "conv":
        return {"padding": "SAME"}
    return {"padding": form}


def random_case(rng: np.random.Generator, index: int, wide: bool = False,
                large: bool = False, max_width: int = 16, maps: tuple[int, int] | None = None
                ) -> Case:
    """A random convolution (not checked for validity: see `cases`). Channels are few (1-15)
    unless ``wide``, which scales them by 6-16 so that dense convs leave the narrow class and
    reach YNNPACK's more-than-16 channels. Maps reach 0-6 positions past the kernel's window
    per side unless ``large``: 8-24 (1-D and 2-D) or 4-8 (3-D), the map sizes from which the
    ``onednn`` policy rows take dense convs. ``max_width`` raises the scale's top; ``maps``
    replaces the 1-D and 2-D range of positions past the window (low, high + 1)."""
    op = "conv" if rng.random() < 0.8 else "conv_transpose"
    rank = int(rng.integers(1, 4))
    kind = (("dense", "pointwise", "depthwise", "grouped") if op == "conv"
            else ("dense", "grouped"))[rng.integers(2 if op != "conv" else 4)]
    groups = {"dense": 1, "pointwise": 1, "grouped": int(rng.integers(2, 4))}.get(kind, 0)
    if kind == "depthwise":
        groups = int(rng.integers(1, 6))
        c_in, c_out = groups, groups * int(rng.integers(1, 3))
    else:
        c_in, c_out = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
    if wide:
        width = int(rng.integers(6, max_width + 1))
        c_in, c_out = c_in * width, c_out * width
        groups = groups * width if kind == "depthwise" else groups
    size = [1] * rank if kind == "pointwise" else _dims(rng, rank, 1, 4)
    dilation = [1] * rank if kind == "pointwise" else _dims(rng, rank, 1, 2)
    strides = _dims(rng, rank, 1, 3)
    kwargs: dict[str, Any] = {"strides": strides, "kernel_dilation": dilation,
                              "feature_group_count": groups, **_padding(rng, rank, op)}
    if kind == "pointwise":
        kwargs["padding"] = "VALID"
        kwargs.pop("padding_mode", None)
    reach = [(k - 1) * d + 1 for k, d in zip(size, dilation)]
    extra = ((8, 25) if rank < 3 else (4, 9)) if large else (0, 7)
    if maps is not None and rank < 3:
        extra = maps
    spatial = [int(r + rng.integers(*extra)) for r in reach]
    if op == "conv":
        if rng.random() < 0.15 and kind != "pointwise":
            kwargs["input_dilation"] = _dims(rng, rank, 1, 2)
        kernel = (*size, c_in // groups, c_out)
    else:
        if rng.random() < 0.3:
            kwargs["output_padding"] = [int(rng.integers(0, s)) for s in strides]
        kernel = (*size, c_out // groups, c_in)
    batch = int(rng.integers(1, 4))
    return Case(index, op, kind, (batch, *spatial, c_in), tuple(kernel), kwargs,
                int(rng.integers(2 ** 31)))


def _registry(op: str) -> list[str]:
    from jaxconv.functional.formulations import CONV, UNFUZZED
    from jaxconv.functional.transpose import TRANSPOSE

    # counting a formulation that exists only where it was built would make the committed
    # reports depend on the machine
    return [name for name in (CONV if op == "conv" else TRANSPOSE) if name not in UNFUZZED]


def claimants(case: Case, impls: Sequence[str] | None = None) -> list[str] | None:
    """The formulations that accept ``case`` (with ``"auto"`` first), or None when no
    formulation, lax included, accepts it (an invalid configuration). With ``impls``, only
    those of them that accept it, in their order (``"auto"`` only if named); naming a
    formulation is how one that ``auto`` does not pick yet (`UNFUZZED`) gets fuzzed."""
    from jaxconv import functional

    def accepts(impl: str) -> bool:
        try:
            functional.plan(case.x_shape, case.kernel_shape, op=case.op, impl=impl, **case.kwargs)
        except (ValueError, TypeError):
            return False
        return True

    if not accepts("xla"):
        return None
    if impls is not None:
        return [name for name in impls if accepts(name)]
    return ["auto", *[name for name in _registry(case.op) if name != "xla" and accepts(name)]]


#: ``pointwise`` cases: 1x1s of 6-255 channels (the scale's top), past the 128 the ``onednn``
#: 1x1 row takes, on 1-D and 2-D maps of 13-41 positions per side (12-40 past the window), so
#: 2-D ones cross both of its map sizes (14x14 and 28x28; 3-D maps as ``large``'s).
POINTWISE_MAX_WIDTH = 85
POINTWISE_MAPS = (12, 41)


def cases(n: int, seed: int, wide: bool = False, impls: Sequence[str] | None = None,
          large: bool = False, pointwise: bool = False) -> Iterator[tuple[Case, list[str]]]:
    """``n`` valid cases and their claimants (among ``impls``, when given: see `claimants`),
    the same cases for the same seed whatever ``impls`` (see `random_case` for ``wide`` and
    ``large``). ``pointwise``: 1x1 convs only, wide ones on large maps (`POINTWISE_MAPS`)."""
    rng = np.random.default_rng(seed)
    index = 0
    while index < n:
        if pointwise:
            case = random_case(rng, index, True, True, POINTWISE_MAX_WIDTH, POINTWISE_MAPS)
            if case.kind != "pointwise":
                continue
        else:
            case = random_case(rng, index, wide, large)
        claimed = claimants(case, impls)
        if claimed is not None:
            yield case, claimed
            index += 1
