"""Recipe levers, each checked for what it does: the validation split shared by every seed,
learning-rate scaling and schedules, label smoothing, EMA, test-time augmentation, erasing,
BatchNorm momentum and learning rate, and the whitened stem."""

import numpy as np
import pytest

from jaxconv import data, train
from jaxconv.train import loop


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
