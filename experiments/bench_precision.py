"""bfloat16 against float32 training steps on this machine: whole steps, then one conv.

Run: ``.venv/bin/python experiments/bench_precision.py [PRESET ...]``. The training step is the
one `jaxconv.train.fit` compiles (batch 128 of 28x28x1, SGD with Nesterov momentum) with
``compute_dtype`` float32 and then bfloat16 (parameters, optimizer state and loss in float32 in
both); the conv rows time a dense 3x3 conv's forward and both gradients alone, to show where
the difference comes from. Medians over alternating repeats after warm-up; ratios are
bf16 time / fp32 time from the same run (above 1: bfloat16 is slower).
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
from bench_train_step import BATCH, alternating_rates, batch, jax_jit_step, model_for

from jaxconv import environment
from jaxconv import functional as F
from jaxconv.analysis.tables import markdown_table
from jaxconv.train import Recipe
from jaxconv.tuning import machine

DTYPES = ("float32", "bfloat16")


def train_step(model, dtype: str):
    return jax_jit_step(model, Recipe(batch_size=BATCH, compute_dtype=dtype))


def conv_step(dtype: str):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((BATCH, 28, 28, 32)), dtype)
    k = jnp.asarray(rng.standard_normal((3, 3, 32, 64)) * 0.1, dtype)
    grad = jax.jit(jax.grad(lambda a, b: jnp.sum(F.conv(a, b).astype(jnp.float32) ** 2),
                            argnums=(0, 1)))
    return lambda *_: grad(x, k)


def compare(label: str, runs: dict, args) -> None:
    rates = alternating_rates(runs, args)
    fp32, bf16 = (BATCH / rates[d] for d in DTYPES)
    print(f"| {label} | {fp32 * 1e3:.0f} | {bf16 * 1e3:.0f} | {bf16 / fp32:.2f} |")


def main(presets: list[str]) -> None:
    environment.start_command([sys.executable, *sys.argv])
    images, labels = batch()
    flags = sorted(f for f in machine.features() if "bf16" in f or "amx" in f or "avx512" in f)
    print(f"CPU: {machine.model()} ({machine.isa()}; "
          f"bf16-related flags: {', '.join(flags) or 'none'}); "
          f"jax {jax.__version__}, {jax.device_count()} {jax.default_backend()} device(s)")
    print(markdown_table(["step", "fp32 (ms)", "bf16 (ms)", "bf16 / fp32"], "lrrr", []))
    for preset in presets:
        model = model_for(preset)
        compare(f"{preset} train step, batch {BATCH}",
                {d: train_step(model, d) for d in DTYPES}, (images, labels))
    compare(f"3x3 conv 32->64 on {BATCH}x28x28, forward + both gradients",
            {d: conv_step(d) for d in DTYPES}, ())


if __name__ == "__main__":
    main(sys.argv[1:] or ["bottleneck-0.3m", "inverted_residual-0.3m"])
