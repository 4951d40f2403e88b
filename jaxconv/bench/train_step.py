"""Whole training steps (forward, backward, SGD-momentum update) of the `nets`, in images/s.

Three contenders per net, alternated in one process: the net built from ``jaxconv.nnx.Conv``
(``impl="auto"``) and ``jaxconv.nnx.BatchNorm``, the same net from ``flax.nnx.Conv`` and
``flax.nnx.BatchNorm`` (what Flax users get), and the PyTorch twin (eager, best of NCHW and
channels_last) when PyTorch is installed.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np
import optax
from flax import nnx

from jaxconv.bench import nets

BATCH = 128
IMAGE = (28, 28, 1)


def jax_step(model: nnx.Module, lr: float = 0.05) -> Callable[[np.ndarray, np.ndarray], float]:
    """A jit-compiled step over the split model state, buffers donated; returns ``run(x, y)``."""
    model.train()
    # Copies: the step donates its state, which must not delete the model's arrays.
    graphdef, params, rest = jax.tree.map(lambda a: a.copy(), nnx.split(model, nnx.Param, ...))
    tx = optax.sgd(lr, momentum=0.9)
    state = [params, rest, tx.init(params)]

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def step(params, rest, opt_state, x, y):
        model = nnx.merge(graphdef, params, rest)

        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        updates, opt_state = tx.update(grads, opt_state, params)
        _, _, rest = nnx.split(model, nnx.Param, ...)
        return optax.apply_updates(params, updates), rest, opt_state, loss

    def run(x, y):
        *state[:], loss = step(*state, x, y)
        return jax.block_until_ready(loss)

    return run


def torch_steps(name: str, images: np.ndarray, labels: np.ndarray, lr: float = 0.05):
    """``{layout: run()}`` for the PyTorch twin, or ``{}`` without PyTorch."""
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    runs = {}
    for layout in ("nchw", "channels_last"):
        net = nets.torch_net(name, in_features=images.shape[-1]).train()
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        if layout == "channels_last":
            net = net.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.from_numpy(labels.astype(np.int64))
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)

        def run(net=net, x=x, y=y, opt=opt):
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            return loss.item()

        runs[layout] = (net, run)
    return runs


def _rate(run: Callable[[], object], steps: int) -> float:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return BATCH / float(np.median(times))


def measure(name: str, rounds: int = 5, steps: int = 4) -> dict[str, tuple[int, float]]:
    """``{contender: (parameters, images/s)}`` for one net; medians over alternating rounds."""
    from jaxconv import nnx as jnnx

    rng = np.random.default_rng(0)
    images = rng.standard_normal((BATCH, *IMAGE)).astype(np.float32)
    labels = rng.integers(0, 10, BATCH).astype(np.int32)
    contenders = {}
    for label, conv_cls, norm_cls in (("jaxconv", jnnx.Conv, jnnx.BatchNorm),
                                      ("flax.nnx.Conv", nnx.Conv, nnx.BatchNorm)):
        model = nets.Net(name, conv_cls, norm_cls=norm_cls, in_features=IMAGE[-1],
                         rngs=nnx.Rngs(0))
        count = nets.param_count(model)
        run = jax_step(model)
        xs, ys = jax.device_put(images), jax.device_put(labels)
        contenders[label] = (count, functools.partial(run, xs, ys))
    for layout, (net, run) in torch_steps(name, images, labels).items():
        contenders[f"PyTorch {layout}"] = (nets.param_count(net), run)
    for _, run in contenders.values():
        for _ in range(2):
            run()
    rates: dict[str, list[float]] = {label: [] for label in contenders}
    for _ in range(rounds):
        for label, (_, run) in contenders.items():
            rates[label].append(_rate(run, steps))
    return {label: (contenders[label][0], float(np.median(rates[label])))
            for label in contenders}


def table(names: Sequence[str], rounds: int = 5) -> Iterator[str]:
    """Markdown lines, one row per net (as it is measured)."""
    yield (f"Training steps: batch {BATCH} of {'x'.join(map(str, IMAGE))}, forward + backward + "
           "SGD-momentum update, images/s (median over alternating rounds; higher is better).")
    yield ""
    yield ("| net | parameters (jaxconv / flax / PyTorch) | jaxconv | flax.nnx.Conv | PyTorch "
           "(best layout) | jaxconv / flax | jaxconv / PyTorch |")
    yield "|---|---|---:|---:|---:|---:|---:|"
    for name in names:
        result = measure(name, rounds=rounds)
        ours, flax_rate = result["jaxconv"], result["flax.nnx.Conv"]
        torch = [v for k, v in result.items() if k.startswith("PyTorch")]
        best = max(torch, key=lambda v: v[1]) if torch else (0, float("nan"))
        counts = " / ".join(f"{c:,}" for c in (ours[0], flax_rate[0], best[0]) if c)
        yield (f"| {name} | {counts} | {ours[1]:.0f} | {flax_rate[1]:.0f} | {best[1]:.0f} | "
               f"{ours[1] / flax_rate[1]:.2f} | {ours[1] / best[1]:.2f} |")
