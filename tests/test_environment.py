"""jaxconv's command adds measured settings only where they are known and not overridden."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import environment

FLAG = environment.MEASURED["0.10"][0]
NAME = FLAG.split("=")[0]


@pytest.fixture(autouse=True)
def fresh_backends(monkeypatch):
    monkeypatch.setattr(environment, "backends_started", lambda: False)


def test_adds_the_measured_flags_to_the_users_own():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    assert environment.recommended(env, "0.10.2")["XLA_FLAGS"] == \
        f"--xla_force_host_platform_device_count=2 {FLAG}"


def test_the_users_value_of_the_same_flag_wins():
    env = {"XLA_FLAGS": f"{NAME}=-individual_dot"}
    assert environment.recommended(env, "0.10.2")["XLA_FLAGS"] == f"{NAME}=-individual_dot"


@pytest.mark.parametrize(("env", "version"), [({"JAXCONV_TUNE": "0"}, "0.10.2"),
                                              ({}, "0.9.0"), ({}, "1.0.0")])
def test_no_flags_when_opted_out_or_on_an_unmeasured_jaxlib(env, version):
    assert "XLA_FLAGS" not in environment.recommended(env, version)


def test_the_command_adds_no_flags_once_jax_has_started(monkeypatch):
    monkeypatch.setattr(environment, "backends_started", lambda: True)
    monkeypatch.setattr(environment, "needs_restart", lambda environ: False)
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    environment.start_command(["unused"])
    assert "XLA_FLAGS" not in os.environ


@pytest.mark.skipif(not environment.glibc(), reason="malloc tunables are glibc's")
def test_recommended_adds_malloc_tunables_after_the_users_own():
    env = environment.recommended({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "0.10.2")
    assert env["GLIBC_TUNABLES"] == ("glibc.malloc.arena_max=2:glibc.malloc.mmap_max=0:"
                                    "glibc.malloc.trim_threshold=17179869184")
    assert env["XLA_FLAGS"] == FLAG
    assert environment.needs_restart({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert not environment.needs_restart(env)
    kept = environment.recommended({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=8"}, "0.10.2")
    assert kept["GLIBC_TUNABLES"] == ("glibc.malloc.mmap_max=8:"
                                      "glibc.malloc.trim_threshold=17179869184")


def test_recommended_changes_nothing_when_opted_out():
    env = {"JAXCONV_TUNE": "0", "XLA_FLAGS": "--a=1"}
    assert environment.recommended(env, "0.10.2") == env
    assert not environment.needs_restart(env)


def _child(code, env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                               "HOME": os.environ["HOME"], **env},
                          check=True).stdout.strip()


def test_importing_jaxconv_leaves_the_environment_alone():
    code = ("import os; import jaxconv, jaxconv.nnx, jaxconv.experiment; "
            "print(os.environ.get('XLA_FLAGS', '<unset>'), "
            "os.environ.get('GLIBC_TUNABLES', '<unset>'))")
    assert _child(code, {}) == "<unset> <unset>"


@pytest.mark.skipif(not environment.glibc(), reason="malloc tunables are glibc's")
def test_the_command_restarts_itself_once_with_the_malloc_tunables(monkeypatch):
    from jaxconv import cli

    calls = []

    def execve(path, argv, env):
        calls.append((argv, env))
        raise SystemExit(0)

    monkeypatch.setattr(os, "execve", execve)
    monkeypatch.setattr(sys, "argv", ["jaxconv", "data", "info", "digits"])
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("JAXCONV_TUNE", raising=False)
    with pytest.raises(SystemExit):
        cli.entry()
    (argv, env), = calls
    assert argv[1:] == ["-m", "jaxconv", "data", "info", "digits"]
    assert env["GLIBC_TUNABLES"] == ":".join(environment.MALLOC_TUNABLES)


def test_the_command_runs_with_synchronous_dispatch():
    code = ("import sys; from jaxconv import cli; sys.argv = ['jaxconv', 'data', 'info', "
            "'digits']; import jaxconv.environment as e; e.start_command(['unused']); "
            "import jax; print(jax.config.read(\"jax_cpu_enable_async_dispatch\"))")
    tuned = ":".join(environment.MALLOC_TUNABLES) if environment.glibc() else ""
    assert _child(code, {"GLIBC_TUNABLES": tuned}) == "False"
    assert _child(code, {"GLIBC_TUNABLES": tuned, "JAXCONV_TUNE": "0"}) == "True"


def test_the_command_keeps_compiled_programs_on_disk(tmp_path):
    code = ("import jaxconv.environment as e; e.start_command(['unused']); import jax; "
            "print(jax.config.jax_compilation_cache_dir)")
    tuned = ":".join(environment.MALLOC_TUNABLES) if environment.glibc() else ""
    home = {"GLIBC_TUNABLES": tuned, "HOME": str(tmp_path)}
    assert _child(code, home) == str(tmp_path / ".cache" / "jaxconv" / "xla")
    assert _child(code, {**home, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "mine")}) == \
        str(tmp_path / "mine")
    assert _child(code, {**home, "JAXCONV_TUNE": "0"}) == "None"


#: A child that calls `tune_process`, then allocates and frees 64 MiB and prints what it
#: returned, whether glibc mapped the block afresh (``hblks``), whether it kept the freed block
#: for the next call (``fordblks``), and whether JAX dispatches asynchronously.
TUNE_AND_PROBE = """
import ctypes, jaxconv.environment as e
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
print(e.tune_process())
before = libc.mallinfo2().hblks
block = libc.malloc(64 << 20)
mapped = libc.mallinfo2().hblks - before
libc.free(block)
import jax
print(mapped, libc.mallinfo2().fordblks >= 64 << 20,
      jax.config.read("jax_cpu_enable_async_dispatch"))
"""


@pytest.mark.skipif(not environment.glibc(), reason="mallopt and mallinfo2 are glibc's")
def test_tune_process_takes_effect():
    """Not only its return values: a large block is no longer mapped afresh, the freed block
    is kept for the next call, and dispatch is synchronous."""
    tuned = _child(TUNE_AND_PROBE, {}).splitlines()
    assert tuned == [str({"malloc": True, "synchronous_dispatch": True}), "0 True False"]
    untouched = _child(TUNE_AND_PROBE, {"JAXCONV_TUNE": "0"}).splitlines()
    assert untouched == [str({"malloc": False, "synchronous_dispatch": False}),
                         "1 False True"]


def test_the_restarted_command_does_its_job():
    out = subprocess.run([sys.executable, "-m", "jaxconv", "data", "info", "digits"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("digits:")


def test_compiler_options_act_on_one_function_and_keep_its_values():
    options = environment.compiler_options("cpu", "0.10.2")
    assert options == {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}
    assert environment.compiler_options("gpu", "0.10.2") == {}
    assert environment.compiler_options("cpu", "0.9.1") == {}

    def f(x, k):
        return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    r = np.random.default_rng(0)
    x = jnp.asarray(r.standard_normal((2, 8, 8, 32)), jnp.float32)
    k = jnp.asarray(r.standard_normal((3, 3, 32, 32)), jnp.float32)
    tuned = jax.jit(f, compiler_options=environment.compiler_options())
    np.testing.assert_allclose(tuned(x, k), jax.jit(f)(x, k), rtol=1e-5, atol=1e-4)
