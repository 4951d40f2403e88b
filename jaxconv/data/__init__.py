"""Datasets (files on disk → NumPy), batching, and on-device augmentation."""

from jaxconv.data.augment import augment, normalize
from jaxconv.data.batching import Batches, eval_batches, split_validation, validation_size
from jaxconv.data.datasets import (
    NAMES,
    SOURCES,
    Dataset,
    download,
    info,
    load,
    search_paths,
)
from jaxconv.data.files import DataError, read_idx

__all__ = [
    "NAMES", "SOURCES", "Batches", "DataError", "Dataset", "augment", "download", "eval_batches",
    "info", "load", "normalize", "read_idx", "search_paths", "split_validation",
    "validation_size",
]
