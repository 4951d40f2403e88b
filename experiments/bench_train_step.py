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
from jaxconv.analysis.tables import markdown_table
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


def model_for(preset: str) -> nnx.Module:
    """``preset`` built for the timed batch: 28x28x1 images, 10 classes, seed 0."""
    return models.create(preset, num_classes=10, in_features=1, rngs=nnx.Rngs(0))


def median_rate(run, args: tuple, repeats: int) -> float:
    """Images per second of ``run(*args)``: the median of ``repeats`` timed calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(run(*args))
        times.append(time.perf_counter() - start)
    return BATCH / float(np.median(times))


def batch() -> tuple[jax.Array, jax.Array]:
    """The fixed batch every step is timed on: ``BATCH`` random 28x28x1 uint8 images, labels."""
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.integers(0, 256, (BATCH, 28, 28, 1), dtype=np.uint8))
    labels = jnp.asarray(rng.integers(0, 10, BATCH, dtype=np.int32))
    return images, labels


def alternating_rates(runs: dict, args: tuple, rounds: int = 5, repeats: int = 4) -> dict:
    """Images per second of each of ``runs`` (called with ``args``): three warm-up calls each,
    then ``rounds`` rounds that time every run in turn (`median_rate` of ``repeats`` calls);
    the median over the rounds."""
    for run in runs.values():
        for _ in range(3):
            jax.block_until_ready(run(*args))
    rates = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            rates[name].append(median_rate(run, args, repeats))
    return {name: float(np.median(values)) for name, values in rates.items()}


def main(presets: list[str]) -> None:
    images, labels = batch()
    recipe = Recipe(batch_size=BATCH)
    print(f"jax {jax.__version__}, {jax.device_count()} {jax.default_backend()} device(s), "
          f"batch {BATCH} of 28x28x1")
    print(markdown_table(["preset", "params", "jax.jit split/merge (img/s)", "nnx.jit (img/s)",
                          "ratio"], "lrrrr", []))
    for preset in presets:
        model = model_for(preset)
        params = analysis.n_params(model)
        rates = alternating_rates({"jax": jax_jit_step(model, recipe),
                                   "nnx": nnx_jit_step(model, recipe)}, (images, labels))
        jax_rate, nnx_rate = rates["jax"], rates["nnx"]
        print(f"| {preset} | {params:,} | {jax_rate:.0f} | {nnx_rate:.0f} | "
              f"{jax_rate / nnx_rate:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["bottleneck-0.3m", "inverted_residual-0.3m"])
