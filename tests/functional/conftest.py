"""Fixtures shared by the functional tests."""

import pytest

from jaxconv.functional import autotune


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh autotune cache file for the test, and one timed repeat per formulation."""
    path = tmp_path / "autotune.json"
    monkeypatch.setenv(autotune.CACHE_ENV, str(path))
    monkeypatch.setattr(autotune, "REPEATS", 1)
    return path
