"""Compile options of the engine's step: measured once per model and machine, then cached."""

import pytest

from jaxconv.train import options


def test_auto_times_each_candidate_once_then_reads_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(options.CACHE_ENV, str(tmp_path / "cache.json"))
    monkeypatch.setattr(options, "candidates",
                        lambda backend=None: {"default": {}, "tuned": {"x": "1"}})
    monkeypatch.setattr(options, "key", lambda state, shapes, model: f"k|{model}")
    timed = []
    ms = {"default": 9.0, "tuned": 4.0}

    def time_step(step, state, batch):
        timed.append(step)
        return ms[step]

    monkeypatch.setattr(options, "time_step", time_step)
    pick = options.choose("auto", make_step=lambda name: name, fresh_state=lambda: None,
                          batch=(), model="net")
    assert pick == ("tuned", ms) and timed == ["default", "tuned"]
    ms["tuned"] = 20.0  # a cached pick is not timed again
    assert options.choose("auto", make_step=lambda name: name, fresh_state=lambda: None,
                          batch=(), model="net")[0] == "tuned"
    assert timed == ["default", "tuned"]
    assert options.choose("default", make_step=lambda name: name, fresh_state=lambda: None,
                          batch=(), model="net") == ("default", {})


def test_unknown_choice_names_the_key_and_the_choices():
    with pytest.raises(ValueError, match=r"train.compile_options: 'fast' is not one of auto, "
                                         r"default, tuned"):
        options.choose("fast", make_step=None, fresh_state=None, batch=(), model="")
