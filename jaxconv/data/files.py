"""Reading dataset files: IDX (MNIST, Fashion-MNIST) and CIFAR-10's python pickles.

Every reader checks what it reads: a bad magic number, a wrong length or a file that is not what
its name says is a `DataError` naming the file, never a silently short dataset.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pathlib
import pickle
import struct
import tarfile

import numpy as np


class DataError(ValueError):
    """A dataset file is missing, corrupt or truncated."""


_IDX_MAGIC = {2049: 1, 2051: 3}   # labels: 1 dim; images: 3 dims (n, rows, cols)


def _open(path: pathlib.Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: cannot be read ({error}); the file is corrupt or truncated")\
            from None


def read_idx(path: pathlib.Path) -> np.ndarray:
    """An IDX file (``.gz`` or raw) as a uint8 array: labels ``(n,)`` or images ``(n, h, w)``.

    Args:
      path: the file.

    Returns:
      The array. A short, truncated or malformed file raises `DataError` naming it.
    """
    data = _open(path)
    if len(data) < 8:
        raise DataError(f"{path}: {len(data)} bytes is too short for an IDX header")
    (magic,) = struct.unpack(">i", data[:4])
    if magic not in _IDX_MAGIC:
        raise DataError(f"{path}: bad magic number {magic}; expected 2049 (labels) or 2051 "
                        "(images) for an unsigned-byte IDX file")
    ndim = _IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: the header is truncated")
    shape = struct.unpack(f">{ndim}i", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(f"{path}: {len(data)} bytes but the header {shape} needs {expected}; "
                        "the file is truncated or corrupt")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def md5(path: pathlib.Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


#: What a CIFAR-10 python batch may reconstruct: NumPy arrays and dtypes, nothing else.
#: (Python 3 pickles of arrays also name ``_codecs.encode`` for their bytes at protocol 2, and
#: ``_frombuffer`` at protocol 5.)
_CIFAR_GLOBALS = {("numpy.core.multiarray", "_reconstruct"),
                  ("numpy._core.multiarray", "_reconstruct"), ("numpy", "ndarray"),
                  ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
                  ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode")}


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds dicts, lists, bytes, numbers and NumPy arrays, and refuses
    every other global, so a planted file cannot run code."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: a CIFAR-10 batch "
                                         "holds only arrays")
        return super().find_class(module, name)


def _cifar_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _ArraysOnly(io.BytesIO(raw), encoding="bytes").load()
        data, labels = batch[b"data"], batch[b"labels"]
    except Exception as error:
        raise DataError(f"{where}: not a CIFAR-10 python batch ({error})") from None
    data = np.asarray(data, np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{where}: data shape {data.shape} with {len(labels)} labels; expected "
                        "(n, 3072) and n labels")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels, np.int32)


CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = ["test_batch"]


def read_cifar10(location: pathlib.Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 from the ``cifar-10-batches-py`` folder or the ``cifar-10-python.tar.gz``."""
    names = CIFAR_TRAIN if split == "train" else CIFAR_TEST
    parts = []
    if location.is_dir():
        for name in names:
            path = location / name
            if not path.is_file():
                raise DataError(f"{path}: missing CIFAR-10 batch")
            parts.append(_cifar_batch(path.read_bytes(), str(path)))
    else:
        try:
            with tarfile.open(location, "r:gz") as tar:
                members = {pathlib.PurePath(m.name).name: m for m in tar.getmembers()}
                for name in names:
                    if name not in members:
                        raise DataError(f"{location}: has no member {name}")
                    raw = tar.extractfile(members[name]).read()
                    parts.append(_cifar_batch(raw, f"{location}:{name}"))
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DataError(f"{location}: cannot be read as a tar.gz ({error})") from None
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
