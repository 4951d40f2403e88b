"""Strict JAX for every test: silent rank or dtype promotion is an error. Compiled programs,
eager ops' included, go to one persistent cache shared by the session's processes (xdist
workers and the subprocesses tests start), so a model built in many tests compiles its
initialisers once.

The suite never touches the user's own caches: the session (and every process it starts) gets
a home of its own, and each test an autotune cache of its own, so no test's outcome depends on
what another test or an earlier session left in a cache.
"""

import atexit
import hashlib
import os
import shutil
import tempfile

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    # set before JAX is imported here, so that it and every process started later read it
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxconv-tests-xla-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], True)

if "JAXCONV_TEST_HOME" not in os.environ:
    # a home for the session, before anything reads ``~``; xdist workers inherit it
    os.environ["JAXCONV_TEST_HOME"] = tempfile.mkdtemp(prefix="jaxconv-tests-home-")
    atexit.register(shutil.rmtree, os.environ["JAXCONV_TEST_HOME"], True)
os.environ["HOME"] = os.environ["JAXCONV_TEST_HOME"]
os.environ["XDG_CACHE_HOME"] = os.path.join(os.environ["HOME"], ".cache")

import jax
import numpy as np
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

#: Tolerances per dtype for float comparisons against the float64 reference.
TOL = {np.float32: dict(atol=1e-4, rtol=1e-4), np.float16: dict(atol=2e-2, rtol=2e-2)}


@pytest.fixture(autouse=True)
def own_autotune_cache(request, monkeypatch):
    """An autotune cache file for this test alone (created only if the test autotunes)."""
    name = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
    monkeypatch.setenv("JAXCONV_AUTOTUNE_CACHE",
                       os.path.join(os.environ["HOME"], "autotune", f"{name}.json"))


@pytest.fixture
def rng():
    return np.random.default_rng(0)
