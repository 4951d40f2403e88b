"""Fixtures shared by the functional tests."""

import pytest

from jaxconv.functional import autotune


@pytest.fixture
def without_native(monkeypatch):
    """The process as it runs without the native extension (or with ``JAXCONV_NATIVE=0``):
    the tests of the lax formulations' policy rows (version 1's, which version 2 keeps after
    its ``onednn`` rows) hold wherever they run."""
    from jaxconv.tuning import native

    monkeypatch.setattr(native, "available", lambda: False)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh autotune cache file for the test, and one timed repeat per formulation."""
    path = tmp_path / "autotune.json"
    monkeypatch.setenv(autotune.CACHE_ENV, str(path))
    monkeypatch.setattr(autotune, "REPEATS", 1)
    return path
