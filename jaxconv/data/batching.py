"""Batches in NumPy: a seeded validation split, and a seeded order per epoch.

The order of epoch ``e`` depends only on ``(seed, e)``, so a run resumed at any step sees
exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from jaxconv.data.datasets import Dataset


def validation_size(n: int, fraction: float) -> int:
    """How many of ``n`` training examples `split_validation` holds out.

    Args:
      n: training examples.
      fraction: the share to hold out (0: none; otherwise at least one).

    Returns:
      The number held out.
    """
    return max(1, round(fraction * n)) if fraction else 0


def split_validation(ds: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """Holds out ``fraction`` of ``ds`` (seeded) as a validation set.

    Args:
      ds: the training set.
      fraction: the share to hold out, in [0, 1).
      seed: the seed of the hold-out.

    Returns:
      ``(train, validation)``, each in the original order; ``validation`` is ``None`` when
      ``fraction`` is 0.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"validation fraction {fraction!r} must be in [0, 1)")
    if fraction == 0:
        return ds, None
    order = np.random.default_rng([seed, 17]).permutation(len(ds))
    cut = len(ds) - validation_size(len(ds), fraction)

    def part(index, split):
        return dataclasses.replace(ds, split=split, images=ds.images[np.sort(index)],
                                   labels=ds.labels[np.sort(index)])

    return part(order[:cut], "train"), part(order[cut:], "validation")


@dataclasses.dataclass(frozen=True)
class Batches:
    """Training batches: shuffled per epoch, the last incomplete batch dropped.

    Attributes:
      ds: the training set.
      batch_size: examples per batch; at most ``len(ds)``.
      seed: the seed of every epoch's order (epoch ``e`` uses ``(seed, e)``).
    """

    ds: Dataset
    batch_size: int
    seed: int

    def __post_init__(self):
        if self.batch_size > len(self.ds):
            raise ValueError(f"batch_size={self.batch_size} is larger than the {len(self.ds)} "
                             f"training images of {self.ds.name}")

    @property
    def steps_per_epoch(self) -> int:
        return len(self.ds) // self.batch_size

    def order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.ds))

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Batches ``start, start + 1, ...`` of ``epoch``."""
        order = self.order(epoch)
        for step in range(start, self.steps_per_epoch):
            index = order[step * self.batch_size:(step + 1) * self.batch_size]
            yield self.ds.images[index], self.ds.labels[index]


def eval_batches(ds: Dataset, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]]:
    """Every example once, in order; the last batch padded, with a 0/1 weight per example.

    Args:
      ds: the dataset.
      batch_size: examples per batch.

    Yields:
      ``(images, labels, weight)``: the last batch padded with zeros up to ``batch_size`` and
      its padding weighted 0.
    """
    for start in range(0, len(ds), batch_size):
        images, labels = ds.images[start:start + batch_size], ds.labels[start:start + batch_size]
        weight = np.ones(len(labels), np.float32)
        pad = batch_size - len(labels)
        if pad:
            images = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
            labels = np.concatenate([labels, np.zeros(pad, labels.dtype)])
            weight = np.concatenate([weight, np.zeros(pad, np.float32)])
        yield images, labels, weight
