"""Recipe levers, each checked for what it does: the validation split shared by every seed,
learning-rate scaling and schedules, label smoothing, EMA, test-time augmentation, erasing,
BatchNorm momentum and learning rate, and the whitened stem."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxconv import data, experiment, train
from jaxconv import nnx as jnn
from jaxconv.blocks import init as block_init
from jaxconv.data.augment import cutout, tta_views
from jaxconv.train import loop
from jaxconv.train import step as step_lib
from tests.train.runner import small_model


def _validation_images(recipe, seed):
    _, val = loop.split(data.load("synthetic", "train"), recipe, seed)
    return val.images


def test_every_training_seed_validates_on_the_same_images_unless_the_split_seed_changes():
    recipe = train.Recipe(validation_fraction=0.25)
    np.testing.assert_array_equal(_validation_images(recipe, 0), _validation_images(recipe, 3))
    other = train.Recipe(validation_fraction=0.25, split_seed=1)
    assert not np.array_equal(_validation_images(recipe, 0), _validation_images(other, 0))
    # null: the training seed chooses, as runs did before split seeds existed
    legacy = train.Recipe(validation_fraction=0.25, split_seed=None)
    assert not np.array_equal(_validation_images(legacy, 0), _validation_images(legacy, 3))
    np.testing.assert_array_equal(_validation_images(legacy, 3), _validation_images(
        train.Recipe(validation_fraction=0.25, split_seed=3), 0))


def test_a_bad_split_seed_names_the_key():
    with pytest.raises(ValueError, match=r"train.split_seed: -1 must be an int >= 0 or null"):
        train.Recipe(split_seed=-1)


def test_linear_lr_scaling_scales_the_peak_with_the_batch():
    def peak(**fields):
        recipe = train.Recipe(epochs=1, learning_rate=0.1, warmup_epochs=0.5, **fields)
        return float(recipe.schedule_fn(10)(5))

    assert peak(batch_size=512) == pytest.approx(0.1)
    assert peak(batch_size=512, lr_scaling="linear") == pytest.approx(0.4)
    assert peak(batch_size=64, lr_scaling="linear", reference_batch_size=256) == \
        pytest.approx(0.025)
    with pytest.raises(ValueError, match=r"train.lr_scaling: 'sqrt' is not one of none, linear"):
        train.Recipe(lr_scaling="sqrt")


def test_onecycle_rises_to_the_peak_at_30_percent_then_falls():
    schedule = train.Recipe(epochs=2, learning_rate=0.4, schedule="onecycle").schedule_fn(50)

    def lr(step):     # optax's one-cycle mixes bools and floats: not under strict promotion
        with jax.numpy_dtype_promotion("standard"):
            return float(schedule(step))

    assert lr(0) == pytest.approx(0.4 / 25)
    assert lr(30) == pytest.approx(0.4)
    assert lr(100) == pytest.approx(0.4 / 25 / 1e4, abs=1e-6)
    assert 0.4 / 25 < lr(15) < 0.4 and lr(100) < lr(65) < 0.4


def test_label_smoothing_moves_mass_from_the_label_to_every_class():
    targets = step_lib.smoothed_targets(jnp.array([2, 0]), 4, 0.2)
    np.testing.assert_allclose(targets, [[0.05, 0.05, 0.85, 0.05], [0.85, 0.05, 0.05, 0.05]],
                               rtol=1e-6)
    logits = jnp.array([[1.0, -2.0, 3.0, 0.5]])
    log_p = jax.nn.log_softmax(logits)[0]
    expected = -(0.85 * log_p[2] + 0.05 * (log_p.sum() - log_p[2]))
    assert float(step_lib.cross_entropy(logits, jnp.array([2]), 4, 0.2)) == \
        pytest.approx(float(expected), rel=1e-6)
    assert float(step_lib.cross_entropy(logits, jnp.array([2]), 4)) == \
        pytest.approx(float(-log_p[2]), rel=1e-6)


class Tiny(nnx.Module):
    """Flatten, one BatchNorm, a linear head: small enough to check a step by hand."""

    def __init__(self, rngs):
        self.norm = jnn.BatchNorm(144, rngs=rngs)
        self.head = nnx.Linear(144, 4, rngs=rngs)

    def __call__(self, x):
        return self.head(self.norm(x.reshape(x.shape[0], -1)))


def _steps(model, **fields):
    fields = {"batch_size": 16, "compile_options": "default", "schedule": "constant",
              "learning_rate": 0.05, "momentum": 0.0, "weight_decay": 0.0, **fields}
    return step_lib.build(model, train.Recipe(**fields), steps_per_epoch=10, num_classes=4,
                          mean=np.zeros(1, np.float32), std=np.ones(1, np.float32))


def _batch(n=16):
    tr = data.load("synthetic", "train")
    return tr.images[:n], tr.labels[:n]


def _params(model):
    return jax.device_get(nnx.split(model, nnx.Param, ...)[1])


def test_ema_evaluates_the_moving_average_and_off_evaluates_the_trained_parameters():
    model = small_model()
    images, labels = _batch()
    for decay in (0.0, 0.5):     # 0.5 as written out below
        steps = _steps(model, ema_decay=decay)
        state = steps.init(model, 0)
        trajectory = [jax.device_get(state.params)]
        for _ in range(3):
            state, _ = steps.train(state, images, labels)
            trajectory.append(jax.device_get(state.params))
        expected = trajectory[-1]
        if decay:
            expected = trajectory[0]
            for params in trajectory[1:]:
                expected = jax.tree.map(lambda e, p: 0.5 * e + 0.5 * p, expected, params)
            assert not np.allclose(jax.tree.leaves(expected)[0],
                                   jax.tree.leaves(trajectory[-1])[0])
        chex.assert_trees_all_close(_params(steps.merge(state)), expected, rtol=1e-5,
                                    atol=1e-7)
        # evaluation runs the merged (averaged) parameters
        logits = steps.merge(state)(images.astype(np.float32) / 255)
        out = steps.evaluate(state, images, labels, np.ones(len(labels), np.float32))
        expected_loss = optax.softmax_cross_entropy(logits, jax.nn.one_hot(labels, 4)).sum()
        assert float(out["loss"]) == pytest.approx(float(expected_loss), rel=1e-5)


def test_tta_logits_are_the_mean_over_the_views():
    model = small_model()
    images, labels = _batch()
    for tta, views in (("flip", [images, images[:, :, ::-1]]),
                       ("shifts", [images, *_numpy_shifts(images)])):
        steps = _steps(model, tta=tta)
        state = steps.init(model, 0)
        evaluated = steps.merge(state)
        logits = np.mean([evaluated(v.astype(np.float32) / 255) for v in views], axis=0)
        out = steps.evaluate(state, images, labels, np.ones(len(labels), np.float32))
        expected = optax.softmax_cross_entropy(logits, jax.nn.one_hot(labels, 4)).sum()
        assert float(out["loss"]) == pytest.approx(float(expected), rel=1e-5)
        assert float(out["correct"]) == np.sum(np.argmax(logits, -1) == labels)
    with pytest.raises(ValueError, match=r"train.tta: 'crops' is not one of none, flip, shifts"):
        train.Recipe(tta="crops")


def _numpy_shifts(images):
    """Up, down, left, right by one pixel, black filling in: written out with slices."""
    up, down, left, right = (np.zeros_like(images) for _ in range(4))
    up[:, :-1], down[:, 1:] = images[:, 1:], images[:, :-1]
    left[:, :, :-1], right[:, :, 1:] = images[:, :, 1:], images[:, :, :-1]
    return [up, down, left, right]


def test_tta_views_are_the_named_images():
    images = np.arange(2 * 4 * 5, dtype=np.uint8).reshape(2, 4, 5, 1)
    for got, want in zip(tta_views(jnp.asarray(images), "shifts"),
                         [images, *_numpy_shifts(images)], strict=True):
        np.testing.assert_array_equal(got, want)
    (alone,) = tta_views(jnp.asarray(images), "none")
    np.testing.assert_array_equal(alone, images)


def test_cutout_erases_one_square_of_the_size_asked_from_the_share_asked():
    images = jnp.full((4000, 12, 12, 1), 255, jnp.uint8)
    erased = np.asarray(cutout(jax.random.key(0), images, 3, 0.3)) == 0
    per_image = erased.sum(axis=(1, 2, 3))
    assert set(np.unique(per_image)) == {0, 9}
    assert np.mean(per_image == 9) == pytest.approx(0.3, abs=0.03)
    corners = []
    for image in erased[per_image == 9][..., 0]:
        rows, cols = np.nonzero(image)
        assert rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2
        corners.append((rows.min(), cols.min()))
    assert {r for r, _ in corners} == set(range(10)) == {c for _, c in corners}
    with pytest.raises(ValueError, match=r"train.cutout_size: 0 must be >= 1 when "
                                         r"train.cutout_rate is 0.5"):
        train.Recipe(cutout_rate=0.5)


def test_cutout_trains_on_erased_images_and_never_touches_evaluation():
    model = small_model()
    images, labels = _batch()
    weight = np.ones(len(labels), np.float32)
    plain, erasing = _steps(model), _steps(model, cutout_rate=1.0, cutout_size=12)
    # every pixel erased: the step trains on black images
    _, seen = erasing.train(erasing.init(model, 0), images, labels)
    _, black = plain.train(plain.init(model, 0), np.zeros_like(images), labels)
    assert float(seen["loss"]) == pytest.approx(float(black["loss"]), rel=1e-6)
    assert jax.device_get(erasing.evaluate(erasing.init(model, 0), images, labels, weight)) == \
        jax.device_get(plain.evaluate(plain.init(model, 0), images, labels, weight))


def test_bn_momentum_reaches_every_batchnorm_and_sets_the_running_average():
    model = small_model()
    norms = step_lib.batch_norms(model)
    assert len(norms) >= 5 and all(norm.momentum == 0.9 for _, norm in norms)  # the blocks'

    steps = _steps(model, bn_momentum=0.5)
    assert all(norm.momentum == 0.5 for _, norm in step_lib.batch_norms(
        steps.merge(steps.init(model, 0))))
    assert all(norm.momentum == 0.9 for _, norm in step_lib.batch_norms(
        _steps(model).merge(_steps(model).init(model, 0))))
    tiny = Tiny(nnx.Rngs(0))
    images, labels = _batch()
    steps = _steps(tiny, bn_momentum=0.25)
    state, _ = steps.train(steps.init(tiny, 0), images, labels)
    batch_mean = images.reshape(len(images), -1).astype(np.float32).mean(0) / 255
    np.testing.assert_allclose(steps.merge(state).norm.mean[...], 0.75 * batch_mean,
                               rtol=1e-5, atol=1e-7)


def test_bn_lr_scale_moves_batchnorm_parameters_by_the_multiplied_rate():
    tiny = Tiny(nnx.Rngs(0))
    images, labels = _batch()
    before = _params(tiny)
    moved = {}
    for scale in (1.0, 4.0):
        steps = _steps(tiny, bn_lr_scale=scale)
        state, _ = steps.train(steps.init(tiny, 0), images, labels)
        moved[scale] = jax.tree.map(lambda a, b: a - b, _params(steps.merge(state)), before)
    for name in ("scale", "bias"):
        step = moved[1.0]["norm"][name][...]
        assert np.abs(step).max() > 0
        np.testing.assert_allclose(moved[4.0]["norm"][name][...], 4 * step, rtol=1e-4,
                                   atol=1e-6)
    for name in ("kernel", "bias"):
        np.testing.assert_array_equal(moved[4.0]["head"][name][...],
                                      moved[1.0]["head"][name][...])


@pytest.mark.parametrize(("key", "value", "message"), [
    ("tta", "crops", r"train.tta: 'crops' is not one of none, flip, shifts"),
    ("ema_decay", 1.5, r"train.ema_decay: 1.5 must be a number in \[0, 1\)"),
    ("bn_momentum", -0.1, r"train.bn_momentum: -0.1 must be a number in \[0, 1\]"),
    ("bn_lr_scale", "x", r"train.bn_lr_scale: 'x' must be a number >= 0"),
    ("cutout_rate", 2, r"train.cutout_rate: 2 must be a number in \[0, 1\]"),
    ("lr_scaling", "sqrt", r"train.lr_scaling: 'sqrt' is not one of none, linear"),
    ("split_seed", "a", r"train.split_seed: 'a' must be an int >= 0 or null"),
    ("stem_init", "pca", r"train.stem_init: 'pca' is not one of model, whiten"),
    ("dirac_init", "yes", r"train.dirac_init: 'yes' must be true or false"),
    ("policy_version", "1", r"train.policy_version: '1' must be an int or null"),
    ("ema", 0.9, r"train: unknown key 'ema'; valid keys: .*ema_decay"),
])
def test_lever_config_errors_name_the_key_and_what_is_allowed(key, value, message):
    raw = {"name": "x", "data": {"name": "synthetic"}, "train": {key: value},
           "variants": [{"name": "a", "model": {"preset": "bottleneck-0.3m"}}]}
    with pytest.raises(experiment.ConfigError, match=message):
        experiment.config.from_mapping(raw)


def test_a_pinned_policy_version_runs_its_rows_and_an_unknown_one_is_refused(monkeypatch):
    """Every version this code holds runs, its layers compiled with that version (so their
    ``auto`` picks are that version's) and recorded; one it does not hold is refused."""
    from jaxconv import nnx as jnn
    from jaxconv.functional.policy import CONV_POLICIES, POLICY_VERSION
    from jaxconv.train import step

    set_compilation, given = jnn.set_compilation, []
    monkeypatch.setattr(step.jnn, "set_compilation",
                        lambda model, c: given.append(c) or set_compilation(model, c))
    assert loop.check_policy(train.Recipe()) == POLICY_VERSION
    images = data.load("synthetic", "train")
    for version in CONV_POLICIES:
        given.clear()
        steps = loop.build_steps(small_model(), images, train.Recipe(policy_version=version))
        assert steps.choices["policy_version"] == version
        assert given[0].policy_version == version and given[-1] is None
    with pytest.raises(ValueError, match=rf"train.policy_version: the config pins formulation "
                                         rf"policy version {max(CONV_POLICIES) + 1}, which this "
                                         rf"jaxconv does not hold"):
        loop.build_steps(small_model(), images,
                         train.Recipe(policy_version=max(CONV_POLICIES) + 1))


def test_a_cutout_larger_than_the_images_names_the_key():
    with pytest.raises(ValueError, match=r"train.cutout_size: 13 is larger than the 12x12"):
        loop.build_steps(small_model(), data.load("synthetic", "train"),
                         train.Recipe(cutout_rate=0.5, cutout_size=13))


def _correlated_images(n=200, size=10):
    """Images whose neighbouring pixels correlate, as natural images' do."""
    noise = np.random.default_rng(0).normal(size=(n, size + 2, size + 2, 1))
    return (noise[:, 1:-1, 1:-1] + noise[:, 2:, 1:-1] + noise[:, 1:-1, 2:]
            + 0.5 * noise[:, :-2, :-2])


def test_the_whitened_stem_decorrelates_the_patches_and_keeps_the_spare_filters():
    images = _correlated_images()
    kernel = np.random.default_rng(1).normal(size=(3, 3, 1, 24)).astype(np.float32)
    whitened = block_init.whitening_kernel(images, kernel)
    patches = np.lib.stride_tricks.sliding_window_view(images, (3, 3), axis=(1, 2))
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, 9)
    moments = patches.T @ patches / len(patches)
    eigenvalues = np.sort(np.linalg.eigvalsh(moments))[::-1]
    outputs = patches @ whitened.reshape(9, 24)[:, :9].astype(np.float64)
    np.testing.assert_allclose(outputs.T @ outputs / len(outputs),
                               np.diag(eigenvalues / (eigenvalues + block_init.WHITEN_EPS)),
                               atol=2e-4)
    np.testing.assert_array_equal(whitened[..., 9:18], -whitened[..., :9])
    np.testing.assert_array_equal(whitened[..., 18:], kernel[..., 18:])


def test_stem_init_whiten_starts_training_from_the_whitened_stem(tmp_path):
    tr, te = data.load("synthetic", "train"), data.load("synthetic", "test")
    model = small_model()
    before = np.asarray(model.stem.conv.kernel[...]).copy()
    recipe = train.Recipe(epochs=1, batch_size=64, learning_rate=0.0, eval_batch_size=64,
                          compile_options="default", stem_init="whiten",
                          validation_fraction=0.25)
    kept, _ = loop.split(tr, recipe, 0)
    mean, std = loop.channel_stats(tr)
    expected = block_init.whitening_kernel(
        (kept.images[:loop.WHITEN_IMAGES].astype(np.float32) / 255 - mean) / std, before)
    assert not np.allclose(expected, before)
    assert loop.prepare(model, tr, dataclasses.replace(recipe, stem_init="model"), 0) is model
    # a learning rate of 0 leaves the parameters where training started
    result = train.fit(model, tr, te, recipe, seed=0, workdir=tmp_path, progress=False)
    np.testing.assert_allclose(result.model.stem.conv.kernel[...], expected, rtol=1e-6)
    np.testing.assert_array_equal(model.stem.conv.kernel[...], before)
    with pytest.raises(ValueError, match=r"stem_init: whitening needs a model with a `stem` "
                                         r"holding a conv layer; Tiny has none"):
        loop.prepare(Tiny(nnx.Rngs(0)), tr, recipe, 0)


@pytest.mark.parametrize(("make", "passed"), [
    (lambda rngs: jnn.Conv(8, 16, (3, 3), rngs=rngs), list(range(8))),
    (lambda rngs: jnn.Conv(8, 4, (5, 5), rngs=rngs), list(range(4))),
    (lambda rngs: jnn.Conv(8, 8, (3, 3), feature_group_count=2, rngs=rngs), list(range(8))),
    (lambda rngs: jnn.DepthwiseConv(4, (3, 3), depth_multiplier=2, rngs=rngs), [0, 2, 4, 6]),
])
def test_dirac_filters_pass_their_inputs_through_and_the_rest_keep_their_init(make, passed):
    layer = make(nnx.Rngs(0))
    kernel = np.asarray(layer.kernel[...])
    groups = layer.in_features // kernel.shape[-2]
    layer.kernel[...] = jnp.asarray(block_init.dirac_kernel(kernel, groups))
    x = jax.random.normal(jax.random.key(1), (2, 7, 7, layer.in_features))
    y = np.asarray(layer(x))
    sources = [o // (layer.out_features // groups) * kernel.shape[-2]
               + o % (layer.out_features // groups) for o in passed]
    np.testing.assert_allclose(y[..., passed], np.asarray(x)[..., sources], atol=1e-6)
    others = [o for o in range(layer.out_features) if o not in passed]
    np.testing.assert_array_equal(np.asarray(layer.kernel[...])[..., others],
                                  kernel[..., others])


def test_dirac_init_sets_every_spatial_conv_of_the_blocks_and_nothing_else():
    model = small_model()
    before = _params(model)
    started = loop.prepare(model, data.load("synthetic", "train"),
                           train.Recipe(dirac_init=True), 0)
    spatial = [layer for _, layer in nnx.iter_modules(started.blocks)
               if isinstance(layer, jnn.Conv) and layer.kernel[...].shape[:2] != (1, 1)]
    assert len(spatial) >= 2
    for layer in spatial:
        kernel = np.asarray(layer.kernel[...])
        assert kernel[1, 1, 0, 0] == 1 and np.count_nonzero(kernel[..., 0]) == 1
    np.testing.assert_array_equal(started.stem.conv.kernel[...], before["stem"]["conv"]["kernel"]
                                  [...])
    np.testing.assert_array_equal(model.blocks[0].conv1.conv.kernel[...],
                                  before["blocks"][0]["conv1"]["conv"]["kernel"][...])


def test_the_report_names_the_levers_a_study_sets():
    plain = experiment.report.settings({"train": {"ema_decay": 0.0, "tta": "none"}})
    assert not any("levers" in line for line in plain)
    lines = experiment.report.settings({"train": {"ema_decay": 0.99, "tta": "flip",
                                                  "split_seed": 0, "epochs": 30}})
    assert "- recipe levers: ema_decay 0.99, tta flip" in lines


def test_test_eval_end_sees_the_test_set_once_and_trains_the_same(tmp_path):
    tr, te = data.load("synthetic", "train"), data.load("synthetic", "test")
    recipe = train.Recipe(epochs=2, batch_size=64, learning_rate=0.05, eval_batch_size=64,
                          compile_options="default", validation_fraction=0.25)
    every = train.fit(small_model(), tr, te, recipe, seed=0, workdir=tmp_path / "every",
                      progress=False).history
    once = train.fit(small_model(), tr, te, dataclasses.replace(recipe, test_eval="end"),
                     seed=0, workdir=tmp_path / "once", progress=False).history
    assert ["test_accuracy" in h for h in every] == [True, True]
    assert ["test_accuracy" in h for h in once] == [False, True]
    def trained(record):   # what training and validation gave, clocks and test left out
        return {k: v for k, v in record.items()
                if not k.startswith(("test_", "train_time", "images_"))}

    assert [trained(h) for h in every] == [trained(h) for h in once]
    assert once[-1]["test_accuracy"] == every[-1]["test_accuracy"]
    with pytest.raises(ValueError, match=r"train.test_eval: 'never' is not one of epoch, end"):
        train.Recipe(test_eval="never")
