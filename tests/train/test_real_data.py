"""One epoch of a 0.1M-parameter preset on Fashion-MNIST reaches 85% test accuracy."""

import os

import pytest

from jaxconv import data, models, train
from tests import modules


@pytest.mark.slow
def test_one_epoch_of_fashion_mnist(tmp_path):
    try:
        tr, te = data.load("fashion_mnist", "train"), data.load("fashion_mnist", "test")
    except data.DataError as error:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"Fashion-MNIST is not installed here: {error}")
    model = modules.build(lambda rngs: models.create("basic-0.1m", num_classes=10,
                                                     in_features=1, rngs=rngs))
    recipe = train.Recipe(epochs=1, batch_size=128, learning_rate=0.1, warmup_epochs=0.1)
    result = train.fit(model, tr, te, recipe, seed=0, workdir=tmp_path, progress=False)
    assert result.final["test_accuracy"] >= 0.85
