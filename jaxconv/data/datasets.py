"""Datasets by name: where their files are looked for, how they load, how to get them.

``load(name, split)`` returns uint8 images ``(N, H, W, C)`` and int32 labels. Names:

* ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download), split
  80/20 into train/test by a fixed seeded permutation. The built-in default.
* ``mnist``, ``fashion_mnist``: the four IDX ``.gz`` files.
* ``cifar10``: the python-pickle batches (folder ``cifar-10-batches-py`` or the ``.tar.gz``).
* ``synthetic``: small generated images whose class is the shape drawn in them (tests).

Files are looked for, in order, in ``data_dir``, ``$JAXCONV_DATA_DIR/<name>``,
``~/.cache/jaxconv/<name>`` and ``/usr/share/datasets/<name with hyphens>`` (where Debian's
``dataset-fashion-mnist`` package puts Fashion-MNIST).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import tempfile
import urllib.request

import numpy as np

from jaxconv.data.files import DataError, md5, read_cifar10, read_idx

SPLITS = ("train", "test")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a file-based dataset comes from: base URL and the MD5 of every file there."""

    url: str
    md5: dict[str, str]
    how: str


SOURCES = {
    "fashion_mnist": Source(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12e480ee83cd310"},
        "apt-get install dataset-fashion-mnist (Debian), or jaxconv data download "
        "fashion_mnist"),
    "mnist": Source(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
        "jaxconv data download mnist"),
    "cifar10": Source(
        "https://www.cs.toronto.edu/~kriz/",
        {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
        "jaxconv data download cifar10"),
}
"""The file-based datasets: where each downloads from, and the MD5 of every file."""
NAMES = ("digits", "mnist", "fashion_mnist", "cifar10", "synthetic")
"""The datasets `load` knows."""
NUM_CLASSES = {"digits": 10, "mnist": 10, "fashion_mnist": 10, "cifar10": 10, "synthetic": 4}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Images ``(N, H, W, C)`` uint8 and labels ``(N,)`` int32.

    Attributes:
      name: one of `NAMES`.
      split: ``"train"``, ``"test"`` or ``"validation"`` (`split_validation`'s hold-out).
      images: uint8 ``(N, H, W, C)``.
      labels: int32 ``(N,)``.
      num_classes: the number of classes.
    """

    name: str
    split: str
    images: np.ndarray
    labels: np.ndarray
    num_classes: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])


def _check(name: str, split: str) -> None:
    if name not in NAMES:
        raise ValueError(f"dataset {name!r} does not exist; valid: {', '.join(NAMES)}")
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not one of {', '.join(SPLITS)}")


def search_paths(name: str, data_dir: str | os.PathLike | None = None) -> list[pathlib.Path]:
    """The folders looked in for ``name``'s files, in order.

    Args:
      name: one of `NAMES`.
      data_dir: a folder looked in first.

    Returns:
      ``data_dir``, ``$JAXCONV_DATA_DIR/<name>``, ``~/.cache/jaxconv/<name>``,
      ``/usr/share/datasets/<name with hyphens>``, those that apply.
    """
    paths = []
    if data_dir is not None:
        paths.append(pathlib.Path(data_dir))
    if os.environ.get("JAXCONV_DATA_DIR"):
        paths.append(pathlib.Path(os.environ["JAXCONV_DATA_DIR"]) / name)
    paths.append(pathlib.Path.home() / ".cache" / "jaxconv" / name)
    paths.append(pathlib.Path("/usr/share/datasets") / name.replace("_", "-"))
    return paths


def _required(name: str, split: str) -> list[str]:
    if name == "cifar10":
        return ["cifar-10-python.tar.gz"]
    return list(IDX_FILES[split])


def _find(name: str, split: str, data_dir) -> pathlib.Path:
    """The first folder holding every file ``split`` needs, or an error saying where we looked."""
    looked = search_paths(name, data_dir)
    for folder in looked:
        if name == "cifar10":
            if (folder / "cifar-10-batches-py").is_dir() or \
                    (folder / "cifar-10-python.tar.gz").is_file():
                return folder
        elif all((folder / f).is_file() for f in _required(name, split)):
            return folder
    raise DataError(
        f"{name} ({split}) not found; looked for {', '.join(_required(name, split))} in: "
        f"{', '.join(map(str, looked))}. To get it: {SOURCES[name].how}")


def _digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    order = np.random.default_rng(0).permutation(len(images))
    cut = int(0.8 * len(images))
    index = order[:cut] if split == "train" else order[cut:]
    return images[index], digits.target[index].astype(np.int32)


_SHAPES = (np.ones((1, 6)), np.ones((6, 1)), np.ones((3, 3)), np.eye(5))


def synthetic(split: str, *, size: int = 12, n: int | None = None) -> tuple[np.ndarray,
                                                                            np.ndarray]:
    """Noisy images whose class (0-3) is the shape drawn at a random place: a horizontal bar,
    a vertical bar, a square or a diagonal."""
    n = n or (256 if split == "train" else 64)
    rng = np.random.default_rng(0 if split == "train" else 1)
    labels = rng.integers(0, 4, n).astype(np.int32)
    images = rng.integers(0, 60, (n, size, size, 1)).astype(np.uint8)
    for i, label in enumerate(labels):
        shape = _SHAPES[label]
        r = rng.integers(0, size - shape.shape[0] + 1)
        c = rng.integers(0, size - shape.shape[1] + 1)
        window = images[i, r:r + shape.shape[0], c:c + shape.shape[1], 0]
        window[shape > 0] = 220
    return images, labels


def load(name: str, split: str = "train", data_dir=None) -> Dataset:
    """Loads a dataset split as uint8 images ``(N, H, W, C)`` and int32 labels.

    >>> ds = load("digits", "train")
    >>> ds.images.shape, ds.images.dtype, ds.num_classes
    ((1437, 8, 8, 1), dtype('uint8'), 10)

    Args:
      name: one of `NAMES`.
      split: ``"train"`` or ``"test"``.
      data_dir: a folder looked in first (`search_paths`).

    Returns:
      The `Dataset`. Missing or corrupt files raise `DataError`, saying where it looked and how to
      get the data.
    """
    _check(name, split)
    if name == "digits":
        images, labels = _digits(split)
    elif name == "synthetic":
        images, labels = synthetic(split)
    elif name == "cifar10":
        folder = _find(name, split, data_dir)
        location = folder / "cifar-10-batches-py"
        images, labels = read_cifar10(location if location.is_dir()
                                      else folder / "cifar-10-python.tar.gz", split)
    else:
        folder = _find(name, split, data_dir)
        image_file, label_file = (folder / f for f in IDX_FILES[split])
        images, labels = read_idx(image_file), read_idx(label_file)
        if images.ndim != 3 or labels.ndim != 1:
            raise DataError(f"{image_file}: expected images (n, rows, cols) and labels (n,); "
                            f"got {images.shape} and {labels.shape}")
        if len(images) != len(labels):
            raise DataError(f"{image_file}: {len(images)} images but {label_file} has "
                            f"{len(labels)} labels")
        images, labels = images[..., None], labels.astype(np.int32)
    check_labels(labels, NUM_CLASSES[name], f"{name} {split}")
    return Dataset(name, split, np.ascontiguousarray(images), labels, NUM_CLASSES[name])


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    """Refuses labels outside ``[0, num_classes)``: a one-hot of such a label is all zeros, so
    its example would silently drop out of the loss."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise DataError(f"{where}: {len(bad)} labels outside 0..{num_classes - 1}, e.g. label "
                        f"{int(labels[bad[0]])} at index {int(bad[0])}; the files are corrupt "
                        "or not this dataset's")


def info(name: str, data_dir=None) -> str:
    """Where ``name`` is looked for and what was found there.

    Args:
      name: one of `NAMES`.
      data_dir: a folder looked in first.

    Returns:
      A few lines, as ``jaxconv data info NAME`` prints them.
    """
    _check(name, "train")
    if name in ("digits", "synthetic"):
        return f"{name}: built in, nothing to find or download"
    lines = [f"{name}: looked in, in order:"]
    for folder in search_paths(name, data_dir):
        files = sorted(SOURCES[name].md5)
        found = [f for f in files if (folder / f).is_file()]
        if name == "cifar10" and (folder / "cifar-10-batches-py").is_dir():
            found.append("cifar-10-batches-py/")
        lines.append(f"  {folder}: {', '.join(found) if found else 'nothing'}")
    try:
        for split in SPLITS:
            ds = load(name, split, data_dir)
            lines.append(f"  {split}: {len(ds):,} images of {ds.shape}")
    except DataError as error:
        lines.append(f"  not loadable: {error}")
    return "\n".join(lines)


def download(name: str, dest: str | os.PathLike | None = None, *,
             base_url: str | None = None) -> pathlib.Path:
    """Fetches ``name``'s files from its source into ``dest`` (default
    ``~/.cache/jaxconv/<name>``), verifying each file's MD5 before it is put in place.

    Args:
      name: a dataset with a source (`SOURCES`).
      dest: the folder to put the files in.
      base_url: a mirror to fetch from instead of the source's URL.

    Returns:
      The folder the files are in. A failed download or a wrong checksum raises `DataError` and
      keeps nothing.
    """
    _check(name, "train")
    if name not in SOURCES:
        raise ValueError(f"{name} is built in; nothing to download")
    source = SOURCES[name]
    folder = pathlib.Path(dest) if dest else pathlib.Path.home() / ".cache" / "jaxconv" / name
    folder.mkdir(parents=True, exist_ok=True)
    for file, expected in source.md5.items():
        target = folder / file
        if target.is_file() and md5(target) == expected:
            continue
        with tempfile.NamedTemporaryFile(dir=folder, delete=False, suffix=".part") as tmp:
            part = pathlib.Path(tmp.name)
            try:
                with urllib.request.urlopen((base_url or source.url) + file) as response:
                    shutil.copyfileobj(response, tmp)
            except OSError as error:
                part.unlink()
                raise DataError(f"{file}: download from {base_url or source.url} failed "
                                f"({error}); nothing was kept") from None
        got = md5(part)
        if got != expected:
            part.unlink()
            raise DataError(f"{file}: MD5 {got} does not match the expected {expected}; the "
                            "download is corrupt (nothing was kept)")
        part.replace(target)
    return folder
