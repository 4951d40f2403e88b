"""Compile options of the engine's step: measured once per model and machine, then cached."""

import pytest

from jaxconv.train import options


def test_auto_times_each_candidate_once_then_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(options.CACHE_ENV, str(tmp_path / "cache.json"))
    monkeypatch.setattr(options, "candidates",
                        lambda backend=None: {"default": {}, "tuned": {"x": "1"}})
    monkeypatch.setattr(options, "key", lambda state, shapes, model: f"k|{model}")
    timed = []
    ms = {"default": 900.0, "tuned": 400.0}

    def time_step(step, state, batch):
        timed.append(step)
        return ms[step]

    monkeypatch.setattr(options, "time_step", time_step)
    pick = options.choose("auto", make_step=lambda name: name, fresh_state=lambda: None,
                          batch=(), model="net")
    assert pick == ("tuned", ms) and timed == ["default", "tuned"]
    ms["tuned"] = 2000.0  # a cached pick is not timed again
    assert options.choose("auto", make_step=lambda name: name, fresh_state=lambda: None,
                          batch=(), model="net")[0] == "tuned"
    assert timed == ["default", "tuned"]
    assert options.choose("default", make_step=lambda name: name, fresh_state=lambda: None,
                          batch=(), model="net") == ("default", {})


def test_a_fast_default_call_is_not_worth_a_second_compilation(tmp_path, monkeypatch):
    monkeypatch.setenv(options.CACHE_ENV, str(tmp_path / "cache.json"))
    monkeypatch.setattr(options, "candidates",
                        lambda backend=None: {"default": {}, "tuned": {"x": "1"}})
    monkeypatch.setattr(options, "key", lambda state, shapes, model: "k")
    timed = []
    monkeypatch.setattr(options, "time_step",
                        lambda step, state, batch: timed.append(step) or options.WORTH_MS / 2)
    assert options.choose("auto", make_step=lambda name: name, fresh_state=lambda: None,
                          batch=(), model="net")[0] == "default"
    assert timed == ["default"]


def test_the_cache_key_tells_apart_what_the_timing_depends_on(monkeypatch):
    import jax.numpy as jnp

    state = {"w": jnp.zeros((3, 3))}
    base = options.key(state, ((8, 4),), "net")
    assert base == options.key(state, ((8, 4),), "net")
    assert base != options.key(state, ((16, 4),), "net")
    assert base != options.key({"w": jnp.zeros((3, 4))}, ((8, 4),), "net")
    from jaxconv.functional import cpu

    flipped = not cpu.ynnpack_convolutions()
    monkeypatch.setattr(cpu, "ynnpack_convolutions", lambda: flipped)
    assert base != options.key(state, ((8, 4),), "net")


def test_unknown_choice_names_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"train.compile_options: 'fast' is not one of auto, "
                                         r"default, tuned"):
        options.choose("fast", make_step=None, fresh_state=None, batch=(), model="")
