"""Type aliases shared by every module of jaxconv (defined once, here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax

Array = jax.Array
Shape = tuple[int, ...]
#: An int broadcast to every spatial dim, or one int per dim.
IntOrSeq = int | Sequence[int]
#: Padding amounts: a string ("SAME", "VALID", "CAUSAL", "CIRCULAR", "REFLECT", "REPLICATE"),
#: an int for every side, one int per dim, or one ``(low, high)`` pair per dim.
PaddingLike = str | int | Sequence[int | tuple[int, int]]
#: ``"auto"``, a formulation name, or a callable with ``lax.conv_general_dilated``'s signature.
ImplLike = str | Callable[..., Any]
Pads = tuple[tuple[int, int], ...]
