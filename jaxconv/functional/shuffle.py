"""Channel shuffle (ShuffleNet, Zhang et al. 2017, arXiv:1707.01083)."""

from __future__ import annotations

import jax

from jaxconv.functional import _checks
from jaxconv.typing import Array


def channel_shuffle(x: Array, groups: int) -> Array:
    """Interleaves ``groups`` channel groups so the next grouped conv sees every group.

    Channels ``(g, i)`` (group ``g``, index ``i`` inside it) move to position ``i * groups + g``:
    with 6 channels and 2 groups, ``[0 1 2 | 3 4 5]`` becomes ``[0 3 1 4 2 5]``.

    Args:
      x: ``(..., C)`` with ``C`` divisible by ``groups``.
      groups: the number of groups of the preceding grouped conv.

    Returns:
      An array of ``x``'s shape and dtype with its last axis permuted.

    Raises:
      ValueError: ``groups`` is not a positive int, or does not divide ``C``.

    >>> import jax.numpy as jnp
    >>> channel_shuffle(jnp.arange(6), 2).tolist()
    [0, 3, 1, 4, 2, 5]
    """
    with jax.named_scope("jaxconv.channel_shuffle"):
        groups = _checks.positive_int("groups", groups)
        channels = x.shape[-1]
        if channels % groups:
            raise ValueError(f"channel_shuffle: groups={groups} does not divide the input's "
                             f"{channels} channels")
        y = x.reshape((*x.shape[:-1], groups, channels // groups))
        return y.swapaxes(-1, -2).reshape(x.shape)
