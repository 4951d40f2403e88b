"""Autotune's cache keys carry the compile regime, and a multi-host run's processes take
process 0's pick while process 0 alone writes the file."""

import json

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv import functional as F
from jaxconv.functional import autotune
from jaxconv.functional.formulations import UNFUZZED
from jaxconv.tuning import cache as cache_lib


def _inputs(dtype=jnp.float32):
    r = np.random.default_rng(0)
    return (jnp.asarray(r.standard_normal((2, 6, 6, 4)), dtype),
            jnp.asarray(r.standard_normal((1, 1, 4, 8)), dtype))


def test_the_key_carries_the_dtype_and_the_xla_flags_it_was_measured_under(cache, monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    F.plan(*_inputs(), impl="autotune")
    F.plan(*_inputs(jnp.bfloat16), impl="autotune")
    assert len(json.loads(cache.read_text())) == 2
    # another compile regime measures again instead of reading the default regime's winner
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type="
                                    "-individual_convolution,-individual_dot")
    F.plan(*_inputs(), impl="autotune")
    keys = list(json.loads(cache.read_text()))
    assert len(keys) == 3 and any("-individual_convolution" in k for k in keys)


def test_a_process_other_than_0_takes_process_0s_pick_and_writes_nothing(cache, monkeypatch):
    x, k = _inputs()
    mine = F.plan(x, k, impl="autotune")
    other = next(n for n, why in mine.candidates.items()
                 if why is None and n != mine.impl and n not in UNFUZZED)
    cache.unlink()
    monkeypatch.setattr(cache_lib, "_parsed", {})
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    monkeypatch.setattr(autotune, "_from_process_0", lambda names, pick: other)
    assert F.plan(x, k, impl="autotune").impl == other
    assert not cache.exists()
