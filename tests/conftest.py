"""Strict JAX for every test: silent rank or dtype promotion is an error."""

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

#: Tolerances per dtype for float comparisons against the float64 reference.
TOL = {np.float32: dict(atol=1e-4, rtol=1e-4), np.float16: dict(atol=2e-2, rtol=2e-2)}


@pytest.fixture
def rng():
    return np.random.default_rng(0)
