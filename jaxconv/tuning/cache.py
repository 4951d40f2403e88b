"""Small JSON caches on disk (the autotuner's measurements): read once per change of the file,
extended entry by entry without losing what other processes wrote, never half-written."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from jaxconv.tuning.files import atomic_write_text

#: The parsed file per path, with the (device, inode, mtime, size) it was read at: the file is
#: the only state, so another path, an edited or a deleted file takes effect at the next read
#: (every write replaces the file, so a new inode marks it even within one mtime tick).
_parsed: dict[Path, tuple[tuple[int, ...], dict[str, Any]]] = {}


def path_from(variable: str, name: str) -> Path:
    """``$variable``, or ``~/.cache/jaxconv/<name>``."""
    return Path(os.environ.get(variable) or Path.home() / ".cache" / "jaxconv" / name)


def _load(path: Path, what: str) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        entries = json.loads(path.read_text())
        if not isinstance(entries, dict):
            raise ValueError(f"expected a JSON object, found {type(entries).__name__}")
        return entries
    except (OSError, ValueError) as error:
        warnings.warn(f"{what}: ignoring the unreadable cache {path} ({error}); it will be "
                      "rewritten with fresh measurements", stacklevel=4)
        return {}


def entries(path: Path, what: str) -> dict[str, Any]:
    """The cache file's entries, parsed again only when the file changed (``what`` names the
    cache in a warning about an unreadable file)."""
    try:
        stat = path.stat()
    except OSError:
        return {}
    stamp = (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)
    seen = _parsed.get(path)
    if seen is None or seen[0] != stamp:
        seen = (stamp, _load(path, what))
        _parsed[path] = seen
    return seen[1]


def store(path: Path, key: str, entry: Any) -> None:
    """Adds one entry to the cache file, keeping what other processes wrote meanwhile."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        current = _load(path, "")
    current[key] = entry
    atomic_write_text(path, json.dumps(current, indent=1, sort_keys=True))
