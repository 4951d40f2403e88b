"""Watching a model's layers without touching their classes: each watched layer of a copy is
replaced by a wrapper module that calls it and reports what went in and out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flax import nnx

from jaxconv.typing import Array


class Watched(nnx.Module):
    """Calls ``layer`` and hands ``(x, y)`` to ``seen``; stands in for the layer in a copy."""

    def __init__(self, layer: nnx.Module, seen: Callable[[Array, Array], None]):
        self.layer, self.seen = layer, seen

    def __call__(self, x: Array, *args: Any, **kwargs: Any) -> Array:
        y = self.layer(x, *args, **kwargs)
        self.seen(x, y)
        return y


def replace(model: nnx.Module, path: tuple, new: nnx.Module) -> None:
    """Puts ``new`` where ``path`` (as `flax.nnx.iter_modules` yields it) points in ``model``."""
    parent = model
    for key in path[:-1]:
        parent = parent[key] if isinstance(key, int) else getattr(parent, key)
    if isinstance(path[-1], int):
        parent[path[-1]] = new
    else:
        setattr(parent, path[-1], new)
