"""jaxconv's commands add measured XLA flags only where they are known and not overridden."""

import pytest

from jaxconv import xla_flags

FLAG = xla_flags.MEASURED["0.10"][0]
NAME = FLAG.split("=")[0]


@pytest.fixture(autouse=True)
def fresh_backends(monkeypatch):
    monkeypatch.setattr(xla_flags, "backends_started", lambda: False)


def test_adds_the_measured_flags_to_the_users_own():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    assert xla_flags.apply(env, "0.10.2") == (FLAG,)
    assert env["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=2 {FLAG}"


def test_the_users_value_of_the_same_flag_wins():
    env = {"XLA_FLAGS": f"{NAME}=-individual_dot"}
    assert xla_flags.apply(env, "0.10.2") == ()
    assert env["XLA_FLAGS"] == f"{NAME}=-individual_dot"


@pytest.mark.parametrize(("env", "version"), [({"JAXCONV_XLA_FLAGS": "0"}, "0.10.2"),
                                              ({}, "0.9.0"), ({}, "1.0.0")])
def test_nothing_is_added_when_opted_out_or_on_an_unmeasured_jaxlib(env, version):
    assert xla_flags.apply(env, version) == ()
    assert "XLA_FLAGS" not in env


def test_nothing_is_added_once_jax_has_started(monkeypatch):
    monkeypatch.setattr(xla_flags, "backends_started", lambda: True)
    env = {}
    assert xla_flags.apply(env, "0.10.2") == ()
    assert env == {}


def test_importing_jaxconv_leaves_the_environment_alone():
    import subprocess
    import sys

    code = ("import os; import jaxconv, jaxconv.nnx, jaxconv.experiment; "
            "print(os.environ.get('XLA_FLAGS', '<unset>'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin"}, check=True).stdout.strip()
    assert out == "<unset>"
