"""Error-message helpers shared by every layer of the package (imports nothing from it)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(value: object, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the valid name closest to ``value``, or ``""``.

    >>> did_you_mean("botleneck", ["basic", "bottleneck"])
    " (did you mean 'bottleneck'?)"
    >>> did_you_mean("zzz", ["basic"])
    ''
    """
    close = difflib.get_close_matches(str(value), list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
