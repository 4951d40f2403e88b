"""Modules and names that moved before 0.1.0, kept for one minor release: reading a name
through its old module returns the new one and warns (a `DeprecationWarning`); they go in
0.2.0 (CHANGELOG.md's Migration section)."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def moved(old: str, new: str, extra: Mapping[str, Any] | None = None) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the module ``old``, whose names now live in ``new``.

    Args:
      old: the old module's name.
      new: the module its names moved to.
      extra: names of ``old`` that are kept there as they are (deprecated shims of their own).

    Returns:
      The function to assign to the old module's ``__getattr__``.
    """
    def __getattr__(name: str) -> Any:
        if extra and name in extra:
            return extra[name]
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(importlib.import_module(new), name)
        warnings.warn(f"{old}.{name} is deprecated and goes in jaxconv 0.2.0; use "
                      f"{new}.{name}", DeprecationWarning, stacklevel=2)
        return value
    return __getattr__
