"""Fixtures shared by the functional tests."""

import os
import subprocess
import sys

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


@pytest.fixture
def probe():
    """``run(source, **env) -> stdout``: runs ``source`` in a fresh CPU-only Python with
    ``env`` added to the environment (a fact that only a new process shows: device count,
    thread count), failing the test with its error output if it fails."""
    def run(source: str, **env: str) -> str:
        done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                              env={**os.environ, "JAX_PLATFORMS": "cpu", **env}, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout
    return run


@pytest.fixture
def four_devices(probe):
    """``run(source) -> {name: value}``: runs ``source`` in a fresh Python whose CPU shows four
    devices, and reads the ``name value`` lines it prints (a probe of a sharded program)."""
    def run(source: str) -> dict[str, str]:
        out = probe(source, XLA_FLAGS="--xla_force_host_platform_device_count=4")
        return dict(line.split(" ", 1) for line in out.strip().splitlines())
    return run
