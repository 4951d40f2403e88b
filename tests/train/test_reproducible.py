"""A run's numbers are a function of its config, seed, machine class and versions: never of a
timing taken while it runs or of what a cache file holds. The choices that change numbers are
recorded, and a resume under other choices is refused."""

import json

import pytest

from jaxconv import data, experiment, models, train
from jaxconv.train import loop, options
from jaxconv.tuning import machine
from tests import modules

#: One dense 3x3 conv wide enough for YNNPACK to take it: on an AVX2 CPU the two compile-option
#: sets trace it as different formulations (`row_taps` with XLA's defaults, `canonical` with
#: YNNPACK's convolutions off), so a choice made by timing would change the numbers.
CONFIG = {
    "name": "same",
    "data": {"name": "synthetic"},
    "train": {"epochs": 1, "batch_size": 64, "eval_batch_size": 64, "learning_rate": 0.05,
              "log_every": 1},
    "model": {"layout": {"block": "basic", "width": 32, "depth": 1, "stem_strides": 1}},
    "variants": [{"name": "basic"}],
    "seeds": [0],
}
#: Wall-clock fields, the only ones allowed to differ between two runs.
CLOCK = ("train_time_s", "images_per_second")


def _metrics(folder):
    return [{k: v for k, v in r.items() if k not in CLOCK}
            for r in train.read_jsonl(folder / "metrics.jsonl")]


def _fresh_caches(monkeypatch, home):
    """A home of its own: no compile-option, autotune or other jaxconv cache from earlier."""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("JAXCONV_COMPILE_CACHE", str(home / "compile_options.json"))
    monkeypatch.setenv("JAXCONV_AUTOTUNE_CACHE", str(home / "autotune.json"))


def test_timings_that_disagree_and_deleted_caches_give_the_same_metrics(tmp_path, monkeypatch):
    """The required check: the same config and seed, run with empty caches under a timer that
    first makes the tuned options faster and then XLA's defaults, give identical metrics."""
    import yaml

    monkeypatch.setattr(machine, "isa", lambda: "avx2")
    runs = {}
    for faster in ("tuned", "default"):
        # `default` is timed first, then `tuned`; every later call (the plan's) is neutral
        first = iter((900.0, 400.0) if faster == "tuned" else (400.0, 900.0))
        monkeypatch.setattr(options, "time_step",
                            lambda *args, first=first, **kwargs: next(first, 300.0))
        _fresh_caches(monkeypatch, tmp_path / f"home-{faster}")
        path = tmp_path / f"{faster}.yaml"
        path.write_text(yaml.safe_dump(dict(CONFIG, output_dir=str(tmp_path / faster))))
        config = experiment.load(path)
        experiment.run(config, command="test", progress=False, log=lambda s: None)
        runs[faster] = config.run_dir / "basic" / "seed-0"
    assert _metrics(runs["tuned"]) == _metrics(runs["default"])
    chosen = [json.loads((f / "result.json").read_text())["choices"]["option_set"]
              for f in runs.values()]
    assert chosen == ["tuned", "tuned"]       # the AVX2 row of the committed table


def _tiny():
    tr, te = data.load("synthetic", "train"), data.load("synthetic", "test")
    model = modules.build(lambda rngs: models.ConvNet(models.layout("basic", 8, depth=1),
                                                      num_classes=tr.num_classes, in_features=1,
                                                      rngs=rngs))
    return model, tr, te


def test_a_resume_under_another_compile_option_set_is_refused(tmp_path):
    model, tr, te = _tiny()
    recipe = train.Recipe(epochs=1, batch_size=32, eval_batch_size=64, checkpoint_every=2,
                          steps_per_call=2, compile_options="default")

    def stop(step):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.fit(model, tr, te, recipe, seed=0, workdir=tmp_path, progress=False, on_step=stop)
    assert train.Checkpoints(tmp_path).latest() == 2
    other = train.Recipe(**{**recipe.__dict__, "compile_options": "tuned"})
    if options.option_sets().keys() == {"default"}:
        pytest.skip("no tuned options on this backend and jaxlib: nothing else to resume under")
    with pytest.raises(ValueError, match=r"default.*tuned|tuned.*default") as error:
        train.fit(model, tr, te, other, seed=0, workdir=tmp_path, progress=False)
    assert str(tmp_path) in str(error.value)
    # the same choices resume
    train.fit(model, tr, te, recipe, seed=0, workdir=tmp_path, progress=False)


def test_build_steps_builds_no_timing_batch(monkeypatch):
    """No timing decides the steps, so no extra device copy of the training set is made."""
    model, tr, _ = _tiny()

    def refuse(*args, **kwargs):
        raise AssertionError("build_steps built a timing batch")

    monkeypatch.setattr(loop, "_timing_call", refuse)
    for choice in ("auto", "default", "tuned"):
        steps = loop.build_steps(model, tr, train.Recipe(batch_size=32, compile_options=choice))
        assert steps.choices["requested"] == choice
