"""What is left to gain around the oneDNN convolutions, measured before building it.

1. A bias post-op: ``relu(conv(x, k) + b)`` against ``relu(conv(x, k))`` through
   ``impl="onednn"``, forward and forward + gradients of (kernel, bias). What a post-op inside
   oneDNN could save is at most the difference (XLA fuses the bias add into the next
   elementwise pass).
2. BatchNorm in the ResNet bench net's training step: the step as benchmarked
   (`jaxconv.nnx.BatchNorm`), against the same net with each BatchNorm replaced by a per-channel
   scale and bias (no statistics, no reductions): the most a faster BatchNorm could save.
3. What was then built for it: BatchNorm's channel sums on the native extension (policy
   version 4, `jaxconv.functional.channel_sums`) against version 3's lax reductions, both
   bench nets' training steps compiled in one process and timed in alternating rounds.

Run on a quiet machine (nothing else on the cores):
``.venv/bin/python experiments/onednn_next_levers.py [--repeats N] [--rounds R] > FILE.md``
"""

from __future__ import annotations

import argparse
import datetime
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxconv import functional as F
from jaxconv import nnx as jnnx
from jaxconv.bench import nets
from jaxconv.tuning import machine, native
from jaxconv.tuning.timing import median_ms

#: (name, input shape, kernel shape) at the bench nets' batch of 128.
CONVS = [("3x3 64->64, 28x28", (128, 28, 28, 64), (3, 3, 64, 64)),
         ("3x3 128->128, 14x14", (128, 14, 14, 128), (3, 3, 128, 128)),
         ("1x1 64->16, 28x28", (128, 28, 28, 64), (1, 1, 64, 16))]


def bias_table(repeats: int, rounds: int) -> None:
    print("| conv (onednn, then relu) | pass | no bias ms | bias ms | bias / no bias |")
    print("|---|---|---:|---:|---:|")
    r = np.random.default_rng(0)
    for name, xs, ks in CONVS:
        x = jnp.asarray(r.standard_normal(xs), jnp.float32)
        k = jnp.asarray(r.standard_normal(ks) / np.sqrt(np.prod(ks[:-1])), jnp.float32)
        b = jnp.asarray(r.standard_normal(ks[-1]), jnp.float32)
        for training in (False, True):
            fns = {}
            for with_bias in (False, True):
                def loss(k, b, x, with_bias=with_bias):
                    y = F.conv(x, k, b if with_bias else None, padding="SAME", impl="onednn")
                    return jnp.sum(jax.nn.relu(y) ** 2)
                fns[with_bias] = jax.jit(jax.grad(loss, argnums=(0, 1)) if training else loss)
            ms = {w: [] for w in fns}
            for _ in range(rounds):
                for w, fn in fns.items():
                    ms[w].append(median_ms(fn, (k, b, x), repeats))
            plain, biased = (float(np.median(ms[w])) for w in (False, True))
            print(f"| {name} | {'forward + gradients' if training else 'forward'} | "
                  f"{plain:.1f} | {biased:.1f} | {biased / plain:.2f} |")


class ScaleBias(nnx.Module):
    """BatchNorm's affine part alone: what the net computes with the statistics removed."""

    def __init__(self, features, momentum=0.9, *, rngs):
        self.scale = nnx.Param(jnp.ones(features))
        self.bias = nnx.Param(jnp.zeros(features))

    def __call__(self, x):
        return x * self.scale[...] + self.bias[...]


def step_images_per_second(norm_cls, repeats: int) -> float:
    return 128 / median_ms(*train_step(norm_cls, policy_version=3), repeats) * 1e3


def train_step(norm_cls, net: str = "resnet_bottleneck", policy_version: int | None = None):
    """``(call, args)``: one jitted training step of a bench net, with its state."""
    model = nets.Net(net, jnnx.Conv, norm_cls=norm_cls, in_features=1, rngs=nnx.Rngs(0))
    jnnx.set_compilation(model, F.Compilation(policy_version=policy_version))
    optimizer = nnx.Optimizer(model, optax.sgd(0.05, momentum=0.9), wrt=nnx.Param)
    graph, state = nnx.split((model, optimizer))

    @jax.jit
    def step(state, x, y):
        model, optimizer = nnx.merge(graph, state)
        loss, grads = nnx.value_and_grad(lambda m: optax.softmax_cross_entropy_with_integer_labels(
            m(x), y).mean())(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss

    r = np.random.default_rng(0)
    x = jnp.asarray(r.standard_normal((128, 28, 28, 1)), jnp.float32)
    y = jnp.asarray(r.integers(0, 10, 128))
    return (lambda s: step(s, x, y)[1]), (state,)


def batch_norm_table(repeats: int, rounds: int) -> None:
    print("| ResNet bench net, training step | images/s |")
    print("|---|---:|")
    rates = {"jaxconv.nnx.BatchNorm (policy 3: lax sums)": [],
             "per-channel scale and bias instead": []}
    for _ in range(rounds):
        for name, cls in zip(rates, (jnnx.BatchNorm, ScaleBias)):
            rates[name].append(step_images_per_second(cls, repeats))
    for name, values in rates.items():
        print(f"| {name} | {np.median(values):.0f} |")


def native_sums_table(repeats: int, rounds: int) -> None:
    print("| net, training step | policy 3 (lax sums) images/s | policy 4 (native sums) "
          "images/s | 4 / 3 | per round |")
    print("|---|---:|---:|---:|---:|")
    for net in nets.NETS:
        steps = {v: train_step(jnnx.BatchNorm, net, v) for v in (3, 4)}
        rates = {v: [] for v in steps}
        for _ in range(rounds):
            for v, (call, args) in steps.items():
                rates[v].append(128 / median_ms(call, args, repeats) * 1e3)
        old, new = (float(np.median(rates[v])) for v in (3, 4))
        per_round = np.asarray(rates[4]) / np.asarray(rates[3])
        print(f"| {net} | {old:.0f} | {new:.0f} | {new / old:.2f} | "
              f"{per_round.min():.2f}-{per_round.max():.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not native.available():
        raise SystemExit(f"onednn_next_levers: {native.reason()}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"# What is left around the oneDNN convolutions ({machine.isa()}, "
          f"{machine.cores()} cores)\n")
    flags = ", ".join(sorted(f for f in machine.features() if f.startswith(("avx", "amx"))))
    print(f"{datetime.date.today()}, commit {commit}, CPU: {machine.model()} ({machine.isa()}; "
          f"flags include {flags}), jax "
          f"{jax.__version__}, oneDNN {native.onednn_version()}, float32, batch 128; median of "
          f"{args.repeats} calls, median of {args.rounds} alternating rounds; the environment "
          "as it is (no XLA flags).\n")
    print("## A bias post-op\n")
    bias_table(args.repeats, args.rounds)
    print("\n## BatchNorm's share of the ResNet bench net's step\n")
    batch_norm_table(args.repeats, args.rounds)
    print("\n## BatchNorm's channel sums on the native extension\n")
    native_sums_table(args.repeats, args.rounds)


if __name__ == "__main__":
    main()
