"""Recipe levers, each checked for what it does: the validation split shared by every seed,
learning-rate scaling and schedules, label smoothing, EMA, test-time augmentation, erasing,
BatchNorm momentum and learning rate, and the whitened stem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import data, train
from jaxconv.train import loop
from jaxconv.train import step as step_lib


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
