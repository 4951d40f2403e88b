"""Pooling over any number of spatial dims, with the convolutions' padding forms and fills.

Layout as everywhere in jaxconv: inputs ``(*batch, *spatial, C)``; the spatial rank comes from
``window_shape``. Argument names and defaults follow Flax's ``nnx.max_pool`` / ``nnx.avg_pool``
(``strides=None`` means 1, not the window as in PyTorch and Keras; pass ``strides=window_shape``
for their default).

Padding takes every form the convs take (`jaxconv.functional.padding`). With the default fill,
``padding_mode="zeros"``, padded positions are empty, as in Flax, PyTorch and Keras: a max never
picks one, and an average counts it as a zero (``count_include_pad=True``, Flax's and PyTorch's
default) or leaves it out of the divisor (``count_include_pad=False``). The other fills
(``"circular"``, ``"reflect"``, ``"replicate"`` and Flax's shortcut strings) pad with real
values, which every pool then treats as ordinary inputs.

Averages sum in float32 at least, and cast back once, so a bfloat16 pool is as accurate as its
output dtype allows.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxconv.functional import _checks
from jaxconv.functional import padding as padlib
from jaxconv.functional.formulations.spec import accumulator
from jaxconv.typing import Array, IntOrSeq, PaddingLike, Shape


def window_shape_tuple(op: str, window_shape: IntOrSeq) -> Shape:
    sequence = isinstance(window_shape, Sequence | np.ndarray) and not isinstance(window_shape, str)
    if _checks.integer(window_shape) is not None or not sequence:
        raise TypeError(
            f"{op}: window_shape={window_shape!r} must be a sequence of ints, one per spatial dim "
            "(e.g. (2, 2) for images); the spatial rank comes from its length")
    shape = _checks.int_tuple(f"{op}: window_shape", tuple(window_shape), len(window_shape))
    if not shape:
        raise ValueError(f"{op}: window_shape={window_shape!r} is empty; expected one int per "
                         "spatial dim")
    return shape


def _prepare(op: str, x: Array, window_shape: IntOrSeq, strides: IntOrSeq | None,
             padding: PaddingLike, padding_mode: str, window_dilation: IntOrSeq | None):
    """Checks the arguments; returns the batched input, the pads, the fill and the geometry."""
    window = window_shape_tuple(op, window_shape)
    rank = len(window)
    if x.ndim < rank + 1:
        raise ValueError(
            f"{op}: input shape {tuple(x.shape)} has {x.ndim} dims, too few for a {rank}-D pool "
            f"with window_shape {window}; expected (*batch, {rank} spatial dims, channels)")
    strides = _checks.int_tuple(f"{op}: strides", strides, rank)
    dilation = _checks.int_tuple(f"{op}: window_dilation", window_dilation, rank)
    flat, restore = _checks.batch_input(x, rank)
    spatial = flat.shape[1:-1]
    reach = tuple(d * (w - 1) + 1 for w, d in zip(window, dilation))
    pads, fill = padlib.resolve(padding, padding_mode, in_spatial=spatial, window=reach,
                           strides=strides)
    for dim, ((low, high), n, r) in enumerate(zip(pads, spatial, reach)):
        if n + low + high < r:
            raise ValueError(
                f"{op}: spatial dim {dim} has {n} positions and padding ({low}, {high}), fewer "
                f"than the window's reach of {r}; use a smaller window_shape or window_dilation, "
                "or pad")
    if fill == "zeros":
        for dim, geometry in enumerate(zip(spatial, pads, window, strides, dilation)):
            _check_every_window_sees_input(op, padding, dim, *geometry)
    if fill != "zeros":
        flat, pads = padlib.apply_fill(flat, pads, fill), ((0, 0),) * rank
    geometry = dict(
        window_dimensions=(1, *window, 1), window_strides=(1, *strides, 1),
        padding=((0, 0), *pads, (0, 0)), window_dilation=(1, *dilation, 1))
    return flat, restore, geometry, window


def _check_every_window_sees_input(op: str, padding: PaddingLike, dim: int, n: int,
                                   pads: tuple[int, int], window: int, stride: int,
                                   dilation: int) -> None:
    """Refuses zero padding under which some output window holds no input position: a max
    would be ``-inf`` and an average without the padding ``nan``. A pad narrower than the
    window's reach is not enough: dilated taps can step over every input."""
    low, high = pads
    outputs = (n + low + high - dilation * (window - 1) - 1) // stride + 1
    starts = np.arange(outputs) * stride - low          # each window's first tap, input coords
    first_inside = starts + np.maximum(0, -(starts // dilation)) * dilation   # first tap >= 0
    empty = (first_inside >= n) | (first_inside > starts + dilation * (window - 1))
    if empty.any():
        position = int(np.argmax(empty))
        taps = [int(starts[position]) + j * dilation for j in range(window)]
        raise ValueError(
            f"{op}: padding={padding!r} gives {pads} in spatial dim {dim}, which leaves windows "
            f"that see only padding (no value to pool): output position {position} of spatial "
            f"dim {dim} has its taps at {taps}, outside the input's {n} position(s) "
            f"(0..{n - 1}); use less padding, a smaller window_dilation or a larger window")


def max_pool(x: Array, window_shape: IntOrSeq, strides: IntOrSeq | None = None,
             padding: PaddingLike = "VALID", *, padding_mode: str = "zeros",
             window_dilation: IntOrSeq | None = 1) -> Array:
    """The largest value in each window, per channel.

    Args:
      x: ``(*batch, *spatial, C)``.
      window_shape: the window, one int per spatial dim; its length is the spatial rank.
      strides: one int per spatial dim, or one int for all; ``None`` means 1 (Flax's default).
      padding: any padding form the convs take; padded positions never win under the default
        ``padding_mode="zeros"``.
      padding_mode: ``"zeros"`` (empty padding), ``"circular"``, ``"reflect"`` or ``"replicate"``.
      window_dilation: gaps between window taps (PyTorch's ``dilation``); ``None`` means 1.

    Returns:
      ``(*batch, *out_spatial, C)``, in ``x``'s dtype (integer inputs included).

    Raises:
      TypeError: ``window_shape`` is an int or not a sequence (the spatial rank would be
        ambiguous), or ``strides`` or ``window_dilation`` is neither an int nor a sequence
        (a bool included).
      ValueError: ``window_shape`` is empty or holds a non-int or an int below 1; ``x`` has
        fewer than ``len(window_shape) + 1`` dims; ``strides`` or ``window_dilation`` is not
        one positive int per spatial dim; ``padding`` or ``padding_mode`` is not a form
        `jaxconv.functional.padding` knows, or the two name different fills; a padded spatial
        dim is shorter than the dilated window; or zero padding leaves some window with
        only padding under it.

    >>> max_pool(jnp.arange(4.0).reshape(1, 4, 1), (2,), strides=2)[..., 0]
    Array([[1., 3.]], dtype=float32)
    >>> max_pool(jnp.ones((2, 8, 8, 3)), (3, 3), strides=2, padding="SAME").shape
    (2, 4, 4, 3)
    """
    flat, restore, geometry, _ = _prepare("max_pool", x, window_shape, strides, padding,
                                          padding_mode, window_dilation)
    # NumPy (concrete) initial values: lax differentiates a max or sum window only when it can
    # see that the initial value is the reduction's identity, also under jit.
    if jnp.issubdtype(flat.dtype, jnp.floating):
        lowest = np.array(-np.inf, flat.dtype)
    else:
        lowest = np.array(jnp.iinfo(flat.dtype).min, flat.dtype)
    return restore(lax.reduce_window(flat, lowest, lax.max, **geometry))


def avg_pool(x: Array, window_shape: IntOrSeq, strides: IntOrSeq | None = None,
             padding: PaddingLike = "VALID", *, padding_mode: str = "zeros",
             window_dilation: IntOrSeq | None = 1, count_include_pad: bool = True) -> Array:
    """The mean of each window, per channel.

    Args:
      x: ``(*batch, *spatial, C)``, floating point.
      window_shape, strides, padding, padding_mode, window_dilation: as `max_pool`.
      count_include_pad: whether zero padding counts in the divisor (Flax's and PyTorch's
        default) or only the input positions a window covers do. Filled padding (any
        ``padding_mode`` but ``"zeros"``) always counts, since it holds values.

    Returns:
      ``(*batch, *out_spatial, C)``, in ``x``'s dtype; the sums run in float32 at least.

    Raises:
      TypeError: ``count_include_pad`` is not a bool, ``x`` is not floating point, or
        ``window_shape`` is not a sequence (as `max_pool`).
      ValueError: as `max_pool`.

    >>> avg_pool(jnp.arange(4.0).reshape(1, 4, 1), (2,), strides=2)[..., 0]
    Array([[0.5, 2.5]], dtype=float32)
    """
    if not isinstance(count_include_pad, bool | np.bool_):
        raise TypeError(f"avg_pool: count_include_pad={count_include_pad!r} must be a bool")
    _floating("avg_pool", x)
    flat, restore, geometry, window = _prepare("avg_pool", x, window_shape, strides, padding,
                                               padding_mode, window_dilation)
    wide = accumulator(flat.dtype)
    total = lax.reduce_window(flat.astype(wide), np.array(0, wide), lax.add, **geometry)
    if count_include_pad:
        mean = total / float(np.prod(window))
    else:
        ones = jnp.ones((1, *flat.shape[1:-1], 1), wide)
        mean = total / lax.reduce_window(ones, np.array(0, wide), lax.add, **geometry)
    return restore(mean.astype(flat.dtype))


def _floating(op: str, x: Array) -> None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{op}: input dtype {jnp.dtype(x.dtype).name} is not floating point; "
                        "cast the input to a float dtype first")


def _spatial_axes(op: str, x: Array, rank: int | None) -> tuple[int, ...]:
    if rank is None:
        rank = x.ndim - 2
    rank = _checks.integer(rank)
    if rank is None or rank < 1 or x.ndim < rank + 1:
        raise ValueError(
            f"{op}: input shape {tuple(x.shape)} with rank={rank!r}: expected (*batch, *spatial, "
            "C) with at least one spatial dim; rank defaults to x.ndim - 2 (one batch axis)")
    return tuple(range(x.ndim - rank - 1, x.ndim - 1))


def global_avg_pool(x: Array, *, rank: int | None = None, keepdims: bool = False) -> Array:
    """The mean over all spatial positions: ``(*batch, *spatial, C) -> (*batch, C)``.

    Args:
      x: ``(*batch, *spatial, C)``, floating point.
      rank: the number of spatial dims (the ones just before ``C``); ``None`` means
        ``x.ndim - 2``, i.e. exactly one batch axis.
      keepdims: keep the spatial dims as size 1, giving ``(*batch, 1, ..., 1, C)``.

    Returns:
      ``(*batch, C)`` (``(*batch, 1, ..., 1, C)`` with ``keepdims``), in ``x``'s dtype; the
      sum runs in float32 at least.

    Raises:
      ValueError: ``rank`` is not an int of at least 1, or ``x`` has fewer than ``rank + 1``
        dims (with ``rank=None``: ``x`` has fewer than 3 dims).
      TypeError: ``x`` is not floating point.

    >>> global_avg_pool(jnp.ones((2, 8, 8, 3))).shape
    (2, 3)
    >>> global_avg_pool(jnp.ones((8, 8, 3)), rank=2, keepdims=True).shape
    (1, 1, 3)
    """
    axes = _spatial_axes("global_avg_pool", x, rank)
    _floating("global_avg_pool", x)
    wide = accumulator(x.dtype)
    return jnp.mean(x.astype(wide), axis=axes, keepdims=keepdims).astype(x.dtype)


def global_max_pool(x: Array, *, rank: int | None = None, keepdims: bool = False) -> Array:
    """The largest value over all spatial positions: ``(*batch, *spatial, C) -> (*batch, C)``.

    Args:
      x: ``(*batch, *spatial, C)``, any dtype ``jnp.max`` takes.
      rank: the number of spatial dims (the ones just before ``C``); ``None`` means
        ``x.ndim - 2``, i.e. exactly one batch axis.
      keepdims: keep the spatial dims as size 1, giving ``(*batch, 1, ..., 1, C)``.

    Returns:
      ``(*batch, C)`` (``(*batch, 1, ..., 1, C)`` with ``keepdims``), in ``x``'s dtype.

    Raises:
      ValueError: ``rank`` is not an int of at least 1, or ``x`` has fewer than ``rank + 1``
        dims (with ``rank=None``: ``x`` has fewer than 3 dims).

    >>> global_max_pool(jnp.arange(8.0).reshape(1, 2, 2, 2))
    Array([[6., 7.]], dtype=float32)
    """
    axes = _spatial_axes("global_max_pool", x, rank)
    return jnp.max(x, axis=axes, keepdims=keepdims)
