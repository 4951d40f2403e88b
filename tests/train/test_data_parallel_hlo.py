"""The data-parallel training program keeps activations sharded: in `train_many`, the program
`fit` runs, the depthwise `shift` formulation's backward, which loops over chunks of the batch,
neither gathers the batch onto every device nor exchanges anything between devices inside its
loop."""

import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).parents[2]

PROBE = """
import re
import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec
from jaxconv import functional as F, models, train
from jaxconv.train import step as step_lib

model = models.ConvNet(models.layout("inverted_residual", 8, depth=1), num_classes=4,
                       in_features=1, rngs=nnx.Rngs(0))
steps = step_lib.build(model, train.Recipe(batch_size=128), steps_per_epoch=1, num_classes=4,
                       mean=np.zeros(1), std=np.ones(1))
mesh = step_lib.mesh()
state = step_lib.replicate(mesh, steps.init(model, 0))
images, labels = step_lib.replicate(mesh, (np.zeros((256, 28, 28, 1), np.float32),
                                           np.zeros(256, np.int32)))
index, active = step_lib.replicate(mesh, (np.arange(256, dtype=np.int32).reshape(2, 128),
                                          np.ones(2, bool)))
hlo = steps.train_many.lower(state, images, labels, index, active).compile().as_text()
print("HLO", hlo.replace("\\n", "\\\\n"))

x = jax.device_put(np.random.default_rng(0).normal(size=(64, 20, 20, 24)).astype(np.float32),
                   NamedSharding(mesh, PartitionSpec("data")))
kernel = np.random.default_rng(1).normal(size=(3, 3, 1, 48)).astype(np.float32)
def grads(impl):
    sharded = F.Compilation(batch_shards=4)
    loss = lambda x, k: (F.depthwise_conv(x, k, strides=2, padding="SAME", impl=impl,
                                          compilation=sharded) ** 2).sum()
    return jax.jit(jax.grad(loss, argnums=(0, 1)))(x, kernel)
for shift, xla in zip(grads("shift"), grads("xla")):
    np.testing.assert_allclose(shift, xla, rtol=1e-4, atol=1e-3)
print("grads equal")
"""


def computations(hlo: str) -> dict[str, str]:
    """The HLO module's computations by name."""
    parts = re.split(r"\n(?=(?:ENTRY )?%[\w.\-]+ )", hlo)
    return {re.match(r"(?:ENTRY )?%([\w.\-]+)", p).group(1): p for p in parts
            if re.match(r"(?:ENTRY )?%", p)}


def test_four_device_train_step_keeps_the_batch_split_and_grads_match():
    # the inverted residual's 3x3 depthwise convs take `shift` on CPU
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "grads equal"
    hlo = next(line for line in lines if line.startswith("HLO ")).replace("\\n", "\n")
    assert not re.search(r" all-gather(-start)?\(", hlo)
    bodies = re.findall(r"while\(.*?body=%?([\w.\-]+)", hlo)
    named = computations(hlo)
    assert bodies and all(b in named for b in bodies)
    # the loops of the scan over training steps hold the step itself: look only at the
    # innermost ones, the backward's loops over batch chunks, which call no other loop
    inner = [b for b in bodies if "while(" not in named[b]]
    assert inner and not any(re.search(r" all-reduce(-start)?\(", named[b]) for b in inner)
