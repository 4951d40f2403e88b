"""Every padding rule of jaxconv, in one place.

A convolution's padding has two parts: the *amounts* (how many positions are added on the low and
high side of each spatial dim) and the *fill* (what those positions hold). `resolve` turns every
form a user may write into explicit ``(low, high)`` pairs plus one fill; `apply_fill` pads an
array with a non-zero fill so that the convolution itself only ever sees zero padding.

Amounts:
  * ``"SAME"``: TF/Keras/Flax convention, output size ``ceil(in / stride)``, an odd total puts the
    extra position on the high side (`jax.lax.padtype_to_pads`).
  * ``"VALID"``: no padding.
  * ``"CAUSAL"``: all ``dilation * (k - 1)`` positions on the low side of every spatial dim, so an
    output never sees a later input (WaveNet, van den Oord et al. 2016, arXiv:1609.03499).
  * ``"CIRCULAR"``, ``"REFLECT"``, ``"REPLICATE"``: Flax's shortcuts, ``((k_d - 1) // 2, k_d // 2)``
    of the dilated kernel size ``k_d`` whatever the stride, filled circularly / by reflection /
    by repeating the edge.
  * an int (every side of every dim), one int per dim, or one ``(low, high)`` pair per dim.

Fills (``padding_mode``, PyTorch's and Equinox's word): ``"zeros"``, ``"circular"``,
``"reflect"`` (mirror without repeating the edge, NumPy's ``"reflect"``), ``"replicate"``
(repeat the edge, NumPy's ``"edge"``).

What does not live here: the transposed convolution's output-size arithmetic
(`jaxconv.functional.transpose`), which calls `resolve` for the forward conv it undoes.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from jax import lax

from jaxconv.functional import _checks
from jaxconv.typing import Array, PaddingLike, Pads

PADDING_STRINGS = ("SAME", "VALID", "CAUSAL", "CIRCULAR", "REFLECT", "REPLICATE")
PADDING_MODES = ("zeros", "circular", "reflect", "replicate")
_SHORTCUT_FILL = {"CIRCULAR": "circular", "REFLECT": "reflect", "REPLICATE": "replicate"}
_NUMPY_MODE = {"circular": "wrap", "reflect": "reflect", "replicate": "edge"}


def canonical_mode(padding_mode: str) -> str:
    """Lower-cased fill name, or a `ValueError` listing the valid ones."""
    if not isinstance(padding_mode, str) or padding_mode.lower() not in PADDING_MODES:
        raise ValueError(
            f"padding_mode={padding_mode!r} is not one of {', '.join(map(repr, PADDING_MODES))}"
        )
    return padding_mode.lower()


def same(size: int, window: int, stride: int) -> tuple[int, int]:
    """SAME amounts for one dim: output ``ceil(size / stride)``, extra on the high side."""
    ((low, high),) = lax.padtype_to_pads((size,), (window,), (stride,), "SAME")
    return int(low), int(high)


def causal(window: int) -> tuple[int, int]:
    """CAUSAL amounts for one dim: everything before the first input."""
    return window - 1, 0


def centered(window: int) -> tuple[int, int]:
    """Flax's CIRCULAR/REFLECT amounts: ``((w - 1) // 2, w // 2)`` for any stride."""
    return (window - 1) // 2, window // 2


def _pair(value: object, dim: int) -> tuple[int, int]:
    if isinstance(value, bool):
        raise TypeError(f"padding for spatial dim {dim} is a bool ({value!r}); expected an int")
    if _checks.integer(value) is not None:
        return _checks.integer(value), _checks.integer(value)
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        low, high = (_checks.integer(v) for v in value)
        if low is not None and high is not None:
            return low, high
    raise TypeError(
        f"padding for spatial dim {dim} is {value!r}; expected an int or a (low, high) pair of ints"
    )


def amounts(
    padding: PaddingLike, *, in_spatial: Sequence[int], window: Sequence[int],
    strides: Sequence[int],
) -> tuple[Pads, str | None]:
    """Explicit ``(low, high)`` pairs for ``padding``, and the fill a shortcut string implies.

    Args:
      padding: any padding form (module docstring).
      in_spatial: the input's spatial sizes (after input dilation).
      window: the dilated kernel's spatial sizes.
      strides: the strides, one per spatial dim.

    Returns:
      ``(pads, fill)`` where ``fill`` is ``"circular"``/``"reflect"``/``"replicate"`` for Flax's
      shortcut strings and ``None`` otherwise.
    """
    rank = len(window)
    if isinstance(padding, str):
        name = padding.upper()
        if name == "SAME":
            return tuple(same(n, w, s) for n, w, s in zip(in_spatial, window, strides)), None
        if name == "VALID":
            return ((0, 0),) * rank, None
        if name == "CAUSAL":
            return tuple(causal(w) for w in window), None
        if name in _SHORTCUT_FILL:
            return tuple(centered(w) for w in window), _SHORTCUT_FILL[name]
        raise ValueError(
            f"padding={padding!r} is not a padding name; expected one of "
            f"{', '.join(map(repr, PADDING_STRINGS))} (any case), an int, one int per spatial dim, "
            "or one (low, high) pair per spatial dim"
        )
    if _checks.integer(padding) is not None:
        pads = ((_checks.integer(padding),) * 2,) * rank
    elif isinstance(padding, Sequence) and len(padding) == rank:
        pads = tuple(_pair(p, d) for d, p in enumerate(padding))
    else:
        raise ValueError(
            f"padding={padding!r} does not fit a {rank}-D convolution; expected a padding name, an "
            f"int, or a sequence of {rank} ints or (low, high) pairs"
        )
    if any(v < 0 for pair in pads for v in pair):
        raise ValueError(f"padding={padding!r} has a negative amount; amounts must be >= 0")
    return pads, None


def resolve(
    padding: PaddingLike, padding_mode: str, *, in_spatial: Sequence[int],
    window: Sequence[int], strides: Sequence[int],
) -> tuple[Pads, str]:
    """Explicit ``(low, high)`` pairs and one fill for any padding form and ``padding_mode``.

    >>> resolve("same", "zeros", in_spatial=(5,), window=(3,), strides=(2,))
    (((1, 1),), 'zeros')
    >>> resolve("CIRCULAR", "zeros", in_spatial=(8, 8), window=(4, 4), strides=(1, 1))
    (((1, 2), (1, 2)), 'circular')
    """
    mode = canonical_mode(padding_mode)
    pads, implied = amounts(padding, in_spatial=in_spatial, window=window, strides=strides)
    if implied is None:
        return pads, mode
    if mode not in ("zeros", implied):
        raise ValueError(
            f"padding={padding!r} already fills with {implied!r}, which contradicts "
            f"padding_mode={padding_mode!r}; pass one of them"
        )
    return pads, implied


def apply_fill(x: Array, pads: Pads, fill: str) -> Array:
    """Pads the spatial dims of a batched ``(B, *spatial, C)`` array with a non-zero fill."""
    if fill == "zeros" or not any(v for pair in pads for v in pair):
        return x
    return jnp.pad(x, ((0, 0), *pads, (0, 0)), mode=_NUMPY_MODE[fill])
