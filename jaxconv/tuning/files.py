"""Files written whole or not at all: a temporary file in the same folder, flushed to disk,
then renamed over the target, so a reader never sees half a file and a crash loses nothing
that was there before."""

from __future__ import annotations

import os
import pathlib
import tempfile


def atomic_write_bytes(path: pathlib.Path, content: bytes) -> None:
    """Writes ``content`` to ``path`` through a temporary file and a rename: never
    half-written. The temporary name is unique, so processes on several hosts sharing the
    folder never collide."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False,
                                     prefix=f".{path.name}.", suffix=".tmp") as tmp:
        try:
            tmp.write(content)
            tmp.flush()
            os.fsync(tmp.fileno())
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, path)


def atomic_write_text(path: pathlib.Path, text: str) -> None:
    """`atomic_write_bytes` of ``text`` in UTF-8."""
    atomic_write_bytes(path, text.encode())
