"""``impl="autotune"`` measures the formulations that can express a call once per shape, keeps
the fastest on disk and computes the same function."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import functional as F
from jaxconv.functional import autotune
from jaxconv.functional.formulations import UNFUZZED
from jaxconv.tuning import cache as cache_lib


def _inputs():
    r = np.random.default_rng(0)
    return (jnp.asarray(r.standard_normal((2, 6, 6, 4)), jnp.float32),
            jnp.asarray(r.standard_normal((1, 1, 4, 8)), jnp.float32))


def test_autotune_measures_once_and_reuses_the_cached_winner(cache, monkeypatch):
    x, k = _inputs()
    plan = F.plan(x, k, impl="autotune")
    assert plan.reason.startswith("autotuned: fastest forward+backward") and str(cache) in \
        plan.reason
    entries = json.loads(cache.read_text())
    (entry,) = entries.values()
    assert entry["impl"] == plan.impl and set(entry["ms"]) == {
        name for name, why in plan.candidates.items()
        if why is None and name not in UNFUZZED}

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again instead of reading the cache")

    monkeypatch.setattr(autotune, "measure", no_measuring)
    monkeypatch.setattr(cache_lib, "_parsed", {})  # a new process: only the file remains
    assert F.plan(x, k, impl="autotune").impl == plan.impl


def test_autotuned_conv_equals_xla_inside_jit(cache):
    x, k = _inputs()
    tuned = jax.jit(lambda x, k: F.conv(x, k, impl="autotune"))(x, k)
    chex.assert_trees_all_close(tuned, F.conv(x, k, impl="xla"), atol=1e-5, rtol=1e-5)
    assert cache.exists()


def test_autotuned_transposed_conv_takes_the_ops_kernel_layout(cache):
    r = np.random.default_rng(1)
    x = jnp.asarray(r.standard_normal((2, 5, 5, 8)), jnp.float32)
    k = jnp.asarray(r.standard_normal((3, 3, 4, 8)), jnp.float32)  # (*k, C_out, C_in)
    chex.assert_trees_all_close(F.conv_transpose(x, k, strides=2, impl="autotune"),
                                F.conv_transpose(x, k, strides=2, impl="xla"),
                                atol=1e-5, rtol=1e-5)


def test_environment_variable_makes_auto_autotune(cache, monkeypatch):
    x, k = _inputs()
    assert not F.plan(x, k).reason.startswith("autotuned")
    monkeypatch.setenv(autotune.ENABLE_ENV, "1")
    assert F.plan(x, k).reason.startswith("autotuned")


def test_an_unreadable_cache_is_measured_afresh_and_rewritten(cache):
    cache.write_text("{not json")
    x, k = _inputs()
    with pytest.warns(UserWarning, match="ignoring the unreadable cache"):
        plan = F.plan(x, k, impl="autotune")
    assert json.loads(cache.read_text())  # valid JSON again, holding the new entry
    assert plan.impl in plan.candidates


def test_autotune_refuses_another_backend(cache):
    x, k = _inputs()
    other = "gpu" if jax.default_backend() == "cpu" else "cpu"
    with pytest.raises(ValueError, match=f"not backend='{other}'"):
        F.plan(x, k, impl="autotune", backend=other)


def test_the_cache_key_names_the_cpu_class_and_jaxlib(cache, monkeypatch):
    from jaxconv.tuning import machine

    x, k = _inputs()
    F.plan(x, k, impl="autotune")
    (key,) = json.loads(cache.read_text())
    assert machine.isa() in key and f"jaxlib {machine.jaxlib_version()}" in key
    # a CPU of another class measures again instead of reading this machine's winner
    other = "avx2" if machine.isa() == "avx512" else "avx512"
    monkeypatch.setattr(machine, "isa", lambda: other)
    F.plan(x, k, impl="autotune")
    assert len(json.loads(cache.read_text())) == 2


def test_the_file_is_the_only_state_a_cleared_or_edited_cache_takes_effect(cache, monkeypatch):
    x, k = _inputs()
    plan = F.plan(x, k, impl="autotune")
    (key,) = json.loads(cache.read_text())
    other = next(n for n, why in plan.candidates.items()
                 if why is None and n != plan.impl and n not in UNFUZZED)
    cache.write_text(json.dumps({key: {"impl": other, "ms": {other: 0.001}}}))
    assert F.plan(x, k, impl="autotune").impl == other        # an edited entry is read
    cache.unlink()
    F.plan(x, k, impl="autotune")                              # a deleted one: measured again
    assert set(json.loads(cache.read_text())[key]["ms"]) == {
        n for n, why in plan.candidates.items() if why is None and n not in UNFUZZED}
    monkeypatch.setenv(autotune.CACHE_ENV, str(cache.with_name("elsewhere.json")))
    F.plan(x, k, impl="autotune")                              # another cache: measured again
    assert cache.with_name("elsewhere.json").exists()


def test_autotune_never_picks_a_formulation_the_fuzz_has_not_checked(cache, monkeypatch):
    from jaxconv.functional import formulations

    monkeypatch.setattr(formulations, "UNFUZZED", frozenset({"canonical"}))
    monkeypatch.setattr("jaxconv.functional.policy.UNFUZZED", frozenset({"canonical"}))
    x, k = _inputs()
    plan = F.plan(x, k, impl="autotune")
    entry = next(iter(json.loads(cache.read_text()).values()))
    assert plan.impl != "canonical" and "canonical" not in entry["ms"]
    assert plan.candidates["canonical"] is None      # it could express the call
