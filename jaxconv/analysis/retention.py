"""How much of its input a squeezing 1x1 conv keeps: `retention`.

A 1x1 conv from ``C_in`` to ``C_out < C_in`` channels maps every pixel's channel vector ``x``
through ``W^T x``. What it keeps is what a later layer could still read back: the best linear
read-out of ``x`` from ``W^T x`` recovers the share

    retained(W) = tr(Σ W (W^T Σ W)^+ W^T Σ) / tr(Σ)

of the input's variance, where ``Σ`` is the covariance of ``x`` over every pixel of the images.
No ``C_out``-dimensional linear map can keep more than the top ``C_out`` eigenvalues of ``Σ``
(``optimum``, the principal subspace) and a random map keeps on average what ``random`` says.
``effective_rank`` is the participation ratio ``(Σ λ)^2 / Σ λ^2`` of the eigenvalues: how many
channels the activations really spread over.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import jax
import numpy as np
from flax import nnx

from jaxconv import nnx as jnn
from jaxconv.analysis import _wrap
from jaxconv.analysis.tables import markdown_table
from jaxconv.typing import Array


@dataclasses.dataclass(frozen=True)
class RetentionRow:
    """One squeezing 1x1: its path in the model, channels, and the shares of input variance
    that it (``retained``), the best ``C_out``-dim projection (``optimum``) and random
    projections (``random``) keep; ``effective_rank`` of the input's covariance.

    Attributes:
      path: the layer's path in the model, e.g. ``blocks.0.reduce.conv``.
      in_channels: ``C_in``.
      out_channels: ``C_out``.
      retained: share of the input's variance that the best linear read-out of the layer's
        outputs recovers.
      optimum: share the top ``C_out`` principal components keep (the most any linear map to
        ``C_out`` channels can keep).
      random: mean share random ``C_in -> C_out`` maps keep.
      effective_rank: participation ratio of the input covariance's eigenvalues.
    """

    path: str
    in_channels: int
    out_channels: int
    retained: float
    optimum: float
    random: float
    effective_rank: float


def kept_share(cov: np.ndarray, kernel: np.ndarray) -> float:
    """The share of ``tr(cov)`` the best linear read-out of ``x`` from ``kernel^T x`` recovers."""
    total = np.trace(cov)
    if total <= 0:
        return float("nan")
    inner = kernel.T @ cov @ kernel
    return float(np.trace(cov @ kernel @ np.linalg.pinv(inner, hermitian=True) @ kernel.T @ cov)
                 / total)


def spectrum_shares(cov: np.ndarray, k: int) -> tuple[float, float]:
    """(share of the top ``k`` eigenvalues, participation ratio) of a covariance."""
    eigenvalues = np.clip(np.linalg.eigvalsh(cov)[::-1], 0, None)
    total = eigenvalues.sum()
    if total <= 0:
        return float("nan"), float("nan")
    return float(eigenvalues[:k].sum() / total), float(total ** 2 / np.sum(eigenvalues ** 2))


def random_share(cov: np.ndarray, k: int, *, draws: int = 8, seed: int = 0) -> float:
    """``kept_share`` of Gaussian ``(C_in, k)`` kernels, averaged over ``draws``."""
    rng = np.random.default_rng(seed)
    return float(np.mean([kept_share(cov, rng.standard_normal((cov.shape[0], k)))
                          for _ in range(draws)]))


def dense_kernel(layer: jnn.Pointwise) -> np.ndarray:
    """A `Pointwise`'s ``(C_in, C_out)`` map, grouped kernels made block-diagonal."""
    kernel = np.asarray(layer.kernel[...], np.float64)
    groups = layer.feature_group_count
    if groups == 1:
        return kernel
    per_in, out = kernel.shape
    per_out = out // groups
    dense = np.zeros((per_in * groups, out))
    for g in range(groups):
        cols = slice(g * per_out, (g + 1) * per_out)
        dense[g * per_in:(g + 1) * per_in, cols] = kernel[:, cols]
    return dense


@dataclasses.dataclass
class _Sums:
    count: int = 0
    total: np.ndarray | float = 0.0
    outer: np.ndarray | float = 0.0


class _Moments(nnx.Module):
    """Stands in for a `Pointwise` and adds its (strided) input pixels to running moments."""

    def __init__(self, layer: jnn.Pointwise):
        self.layer = layer
        self.sums = _Sums()

    def __call__(self, x: Array) -> Array:
        strides = self.layer.strides
        rank = x.ndim - 2
        steps = (strides,) * rank if isinstance(strides, int) else tuple(strides)
        seen = np.asarray(x[(slice(None), *(slice(None, None, s) for s in steps))], np.float64)
        pixels = seen.reshape(-1, seen.shape[-1])
        sums = self.sums
        sums.count += len(pixels)
        sums.total = sums.total + pixels.sum(0)
        sums.outer = sums.outer + pixels.T @ pixels
        return self.layer(x)

    def covariance(self) -> np.ndarray:
        sums = self.sums
        mean = sums.total / sums.count
        return sums.outer / sums.count - np.outer(mean, mean)


def squeezing_layers(model: nnx.Module) -> Iterator[tuple[tuple, jnn.Pointwise]]:
    """(path, layer) of every `Pointwise` in ``model`` with fewer outputs than inputs."""
    for path, module in nnx.iter_modules(model):
        if isinstance(module, jnn.Pointwise) and module.out_features < module.in_features:
            yield path, module


def retention(model: nnx.Module, images: Array, *, batch_size: int = 256,
              random_draws: int = 8, seed: int = 0) -> list[RetentionRow]:
    """One `RetentionRow` per squeezing 1x1 (`Pointwise` with ``C_out < C_in``) of ``model``.

    The model runs in eval mode on a copy (``model`` is left as it was) over ``images``, which
    must be what the model takes (normalised as in training); a strided 1x1 counts the pixels
    it reads.

    A 3x3 conv to 16 channels, then a 1x1 that squeezes them to 4 (a preset such as
    ``models.create("bottleneck-0.3m", ...)`` has one per block):

    >>> net = nnx.Sequential(jnn.Conv(1, 16, (3, 3), rngs=nnx.Rngs(0)),
    ...                      jnn.Pointwise(16, 4, rngs=nnx.Rngs(1)))
    >>> images = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype(np.float32)
    >>> [(r.path, r.in_channels, r.out_channels) for r in retention(net, images)]
    [('layers.1', 16, 4)]

    Args:
      model: an NNX model with `jaxconv.nnx.Pointwise` layers.
      images: a batch ``(N, *spatial, C)`` as the model takes it.
      batch_size: images per forward pass.
      random_draws: random projections averaged for ``random``.
      seed: seed of those projections.

    Returns:
      The rows, in the order the layers appear in the model.
    """
    images = np.asarray(images)
    if images.ndim < 3 or not len(images):
        raise ValueError(f"images: expected a non-empty batch (N, *spatial, C); got shape "
                         f"{images.shape}")
    copy = nnx.clone(model)
    copy.eval()
    recorders = []
    for path, layer in list(squeezing_layers(copy)):
        recorder = _Moments(layer)
        _wrap.replace(copy, path, recorder)
        recorders.append((".".join(str(p) for p in path), recorder))
    for start in range(0, len(images), batch_size):
        jax.block_until_ready(copy(images[start:start + batch_size]))
    rows = []
    for name, recorder in recorders:
        layer = recorder.layer
        cov = recorder.covariance()
        k = layer.out_features
        optimum, rank = spectrum_shares(cov, k)
        rows.append(RetentionRow(
            path=name, in_channels=layer.in_features, out_channels=k,
            retained=kept_share(cov, dense_kernel(layer)), optimum=optimum,
            random=random_share(cov, k, draws=random_draws, seed=seed), effective_rank=rank))
    return rows


def retention_table(rows: list[RetentionRow]) -> str:
    """Markdown table of `retention` rows.

    Args:
      rows: `retention`'s rows.

    Returns:
      The table, one line per row, with ``retained / optimum`` added.
    """
    header = ["layer", "C_in -> C_out", "retained", "optimum (top C_out PCs)", "random",
              "retained / optimum", "effective rank of input"]
    return markdown_table(header, "llrrrrr", (
        [r.path, f"{r.in_channels} -> {r.out_channels}", f"{r.retained:.3f}",
         f"{r.optimum:.3f}", f"{r.random:.3f}", f"{r.retained / r.optimum:.3f}",
         f"{r.effective_rank:.1f}"] for r in rows))
