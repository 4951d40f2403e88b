"""Training-step throughput: jaxconv's jax.jit step over split NNX state vs an nnx.jit step.

Run: ``.venv/bin/python experiments/bench_train_step.py [PRESET ...]``. Batch 128 of 28x28x1,
SGD with Nesterov momentum, the same model and recipe for both; medians over alternating
repeats after warm-up, in images per second.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxconv import analysis, models
from jaxconv.train import Recipe
from jaxconv.train import step as S

BATCH = 128


def jax_jit_step(model, recipe):
    steps = S.build(model, recipe, steps_per_epoch=100, num_classes=10, mean=np.zeros(1),
                    std=np.ones(1))
    state = steps.init(model, 0)

    def run(images, labels):
        nonlocal state
        state, metrics = steps.train(state, images, labels)
        return metrics["loss"]

    return run


def nnx_jit_step(model, recipe):
    model = nnx.clone(model)
    model.train()
    optimizer = nnx.Optimizer(model, recipe.optimizer_fn(100), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, images, labels):
        x = (images.astype(jnp.float32) / 255.0 - 0.5) / 0.5

        def loss_fn(model):
            logits = model(x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    return lambda images, labels: step(model, optimizer, images, labels)


def median_rate(run, images, labels, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run(images, labels))
        times.append(time.perf_counter() - start)
    return BATCH / float(np.median(times))


def main(presets: list[str]) -> None:
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (BATCH, 28, 28, 1), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, 10, BATCH, dtype=np.int32))
    recipe = Recipe(batch_size=BATCH)
    print(f"jax {jax.__version__}, {jax.device_count()} {jax.default_backend()} device(s), "
          f"batch {BATCH} of 28x28x1")
    print("| preset | params | jax.jit split/merge (img/s) | nnx.jit (img/s) | ratio |")
    print("|---|---:|---:|---:|---:|")
    for preset in presets:
        model = models.create(preset, num_classes=10, in_features=1, rngs=nnx.Rngs(0))
        params = analysis.n_params(model)
        runs = {"jax": jax_jit_step(model, recipe), "nnx": nnx_jit_step(model, recipe)}
        for run in runs.values():
            for _ in range(3):
                jax.block_until_ready(run(images, labels))
        rates = {name: [] for name in runs}
        for _ in range(5):
            for name, run in runs.items():
                rates[name].append(median_rate(run, images, labels, repeats=4))
        jax_rate, nnx_rate = (float(np.median(rates[n])) for n in ("jax", "nnx"))
        print(f"| {preset} | {params:,} | {jax_rate:.0f} | {nnx_rate:.0f} | "
              f"{jax_rate / nnx_rate:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["bottleneck-0.3m", "inverted_residual-0.3m"])
