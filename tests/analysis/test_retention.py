"""`jaxconv.analysis.retention`: the share of input variance a squeezing 1x1 keeps, against
covariances whose answer is known in closed form."""

import numpy as np
import pytest
from flax import nnx

from jaxconv import analysis
from jaxconv import nnx as jnn
from jaxconv.analysis.retention import kept_share, spectrum_shares

EIGENVALUES = np.array([8.0, 4.0, 2.0, 1.0, 0.5, 0.25, 0.125, 0.0625])


class Squeeze(nnx.Module):
    """Images of 8 channels through one 1x1 to ``k`` channels (and one that widens)."""

    def __init__(self, k: int, *, strides=1, groups=1):
        self.squeeze = jnn.Pointwise(8, k, strides=strides, feature_group_count=groups,
                                     rngs=nnx.Rngs(0))
        self.widen = jnn.Pointwise(k, 16, rngs=nnx.Rngs(1))

    def __call__(self, x):
        return self.widen(self.squeeze(x))


def _images(eigenvalues=EIGENVALUES, n=64, seed=0):
    """(n, 6, 6, 8) images whose channel covariance has these eigenvalues, and its basis."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    z = rng.standard_normal((n * 36, 8)) * np.sqrt(eigenvalues)
    return (z @ basis.T + 3.0).reshape(n, 6, 6, 8).astype(np.float32), basis


def _sample_basis(images):
    pixels = images.reshape(-1, 8).astype(np.float64)
    values, vectors = np.linalg.eigh(np.cov(pixels, rowvar=False, bias=True))
    return values[::-1], vectors[:, ::-1]


@pytest.mark.parametrize("k", [1, 3, 5])
def test_a_kernel_on_the_top_principal_components_keeps_the_optimum(k):
    images, _ = _images()
    values, vectors = _sample_basis(images)
    model = Squeeze(k)
    model.squeeze.kernel[...] = vectors[:, :k].astype(np.float32)
    (row,) = analysis.retention(model, images)
    assert (row.path, row.in_channels, row.out_channels) == ("squeeze", 8, k)
    np.testing.assert_allclose(row.retained, row.optimum, rtol=1e-5)
    np.testing.assert_allclose(row.optimum, values[:k].sum() / values.sum(), rtol=1e-6)


def test_a_kernel_on_the_bottom_components_keeps_only_their_share():
    images, _ = _images()
    values, vectors = _sample_basis(images)
    model = Squeeze(3)
    model.squeeze.kernel[...] = vectors[:, -3:].astype(np.float32)
    (row,) = analysis.retention(model, images)
    np.testing.assert_allclose(row.retained, values[-3:].sum() / values.sum(), rtol=1e-4)
    assert row.retained < 0.05 < row.random < row.optimum


def test_the_closed_form_on_an_exact_covariance():
    rng = np.random.default_rng(1)
    basis, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    cov = basis @ np.diag(EIGENVALUES) @ basis.T
    share = EIGENVALUES[:2].sum() / EIGENVALUES.sum()
    assert kept_share(cov, basis[:, :2]) == pytest.approx(share)
    mixed = basis[:, :2] @ rng.standard_normal((2, 2))   # any read-out of the same subspace
    assert kept_share(cov, mixed) == pytest.approx(share)
    optimum, rank = spectrum_shares(cov, 2)
    assert optimum == pytest.approx(share)
    assert rank == pytest.approx(EIGENVALUES.sum() ** 2 / (EIGENVALUES ** 2).sum())


@pytest.mark.parametrize("k", [2, 4, 6])
def test_random_projections_keep_k_over_c_of_isotropic_data(k):
    images, _ = _images(np.ones(8), n=200)
    (row,) = analysis.retention(Squeeze(k), images, random_draws=16)
    assert row.random == pytest.approx(k / 8, abs=0.02)
    assert row.effective_rank == pytest.approx(8, rel=0.02)


def test_strided_and_grouped_squeezes_and_the_model_is_left_alone():
    images, _ = _images()
    model = Squeeze(4, strides=(2, 2), groups=2)
    before = np.asarray(model.squeeze.kernel[...]).copy()
    (row,) = analysis.retention(model, images)
    pixels = images[:, ::2, ::2].reshape(-1, 8).astype(np.float64)
    cov = np.cov(pixels, rowvar=False, bias=True)
    dense = np.zeros((8, 4))
    kernel = before.astype(np.float64)          # (4, 4): two groups of 4 -> 2
    dense[:4, :2], dense[4:, 2:] = kernel[:, :2], kernel[:, 2:]
    np.testing.assert_allclose(row.retained, kept_share(cov, dense), rtol=1e-5)
    assert isinstance(model.squeeze, jnn.Pointwise)
    np.testing.assert_array_equal(np.asarray(model.squeeze.kernel[...]), before)


def test_models_without_a_squeeze_give_no_rows_and_bad_images_are_refused():
    images, _ = _images()
    assert analysis.retention(Squeeze(8), images) == []
    with pytest.raises(ValueError, match=r"images: expected a non-empty batch .*shape \(0,"):
        analysis.retention(Squeeze(3), images[:0])
