"""The data-parallel train step keeps activations sharded: no formulation's backward gathers
the batch onto every device."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).parents[2]

PROBE = """
import re
import numpy as np
from flax import nnx
from jaxconv import models, train
from jaxconv.train import step as step_lib

model = models.ConvNet(models.layout("inverted_residual", 8, depth=1), num_classes=4,
                       in_features=1, rngs=nnx.Rngs(0))
steps = step_lib.build(model, train.Recipe(batch_size=128), steps_per_epoch=1, num_classes=4,
                       mean=np.zeros(1), std=np.ones(1))
mesh = step_lib.mesh()
state = step_lib.replicate(mesh, steps.init(model, 0))
images, labels = step_lib.shard_batch(mesh, np.zeros((128, 28, 28, 1), np.float32),
                                      np.zeros(128, np.int32))
hlo = steps.train.lower(state, images, labels).compile().as_text()
print(sum(1 for line in hlo.splitlines() if re.search(r" all-gather(-start)?\\(", line)))

import jax
from jax.sharding import NamedSharding, PartitionSpec
from jaxconv import functional as F

x = jax.device_put(np.random.default_rng(0).normal(size=(64, 20, 20, 24)).astype(np.float32),
                   NamedSharding(mesh, PartitionSpec("data")))
kernel = np.random.default_rng(1).normal(size=(3, 3, 1, 48)).astype(np.float32)
def grads(impl):
    loss = lambda x, k: (F.depthwise_conv(x, k, strides=2, padding="SAME", impl=impl) ** 2).sum()
    return jax.jit(jax.grad(loss, argnums=(0, 1)))(x, kernel)
for shift, xla in zip(grads("shift"), grads("xla")):
    np.testing.assert_allclose(shift, xla, rtol=1e-4, atol=1e-3)
print("grads equal")
"""


def test_four_device_train_step_gathers_no_activations_and_grads_match():
    # the inverted residual's 3x3 depthwise convs take the shifted multiply-add formulation,
    # whose backward loops over chunks of the batch
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300, check=True).stdout
    assert out.strip().splitlines() == ["0", "grads equal"]
