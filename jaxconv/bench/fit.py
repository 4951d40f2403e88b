"""Whole ``fit`` epochs against a PyTorch training loop of the same net, in images/s.

jaxconv's side is `jaxconv.train.fit` as a user calls it (data pipeline, several steps per
call, per-step metrics and logging, checkpoint at the epoch's end), its first call (the
compilation, and the compile-option timing when not cached) excluded. PyTorch's side is the
loop a PyTorch user writes for the `nets` twin: each epoch a shuffled order, each step the batch
gathered from a uint8 tensor and normalised, forward, cross-entropy, backward, SGD with
momentum, the loss read back; best of NCHW and channels_last. Same batch, same images.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator, Sequence

import numpy as np

from jaxconv.bench import nets

BATCH = 128
IMAGE = (28, 28, 1)


def _images(steps: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = BATCH * steps
    return (rng.integers(0, 256, (n, *IMAGE)).astype(np.uint8),
            rng.integers(0, 10, n).astype(np.int32))


def jaxconv_fit(name: str, steps: int) -> float:
    """Images/s of one `fit` epoch of ``steps`` steps of the `nets` net ``name``."""
    from flax import nnx

    from jaxconv import nnx as jnnx
    from jaxconv import train
    from jaxconv.data.datasets import Dataset

    images, labels = _images(steps)
    ds = Dataset("bench", "train", images, labels, 10)
    test = Dataset("bench", "test", images[:BATCH], labels[:BATCH], 10)
    model = nets.Net(name, jnnx.Conv, norm_cls=jnnx.BatchNorm, in_features=IMAGE[-1],
                     rngs=nnx.Rngs(0))
    recipe = train.Recipe(epochs=1, batch_size=BATCH, learning_rate=0.05, nesterov=False,
                          weight_decay=0.0, eval_batch_size=BATCH, log_every=10)
    with tempfile.TemporaryDirectory() as workdir:
        return train.fit(model, ds, test, recipe, seed=0, workdir=workdir,
                         progress=False).images_per_second


def torch_fit(name: str, steps: int) -> dict[str, float]:
    """``{layout: images/s}`` of PyTorch's epoch loop (after one warm-up step), or ``{}``."""
    try:
        import torch
    except ImportError:
        return {}
    torch.set_num_threads(os.cpu_count() or 1)
    images, labels = _images(steps)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    targets = torch.from_numpy(labels.astype(np.int64))
    rates = {}
    for layout in ("nchw", "channels_last"):
        torch.manual_seed(0)
        net = nets.torch_net(name, in_features=IMAGE[-1]).train()
        memory = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        net = net.to(memory_format=memory)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)

        def step(index, net=net, opt=opt, memory=memory):
            x = (data[index].float() / 255.0 - 0.5) / 0.25
            x = x.contiguous(memory_format=memory)
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(net(x), targets[index])
            loss.backward()
            opt.step()
            return loss.item()

        order = torch.randperm(len(targets))
        step(order[:BATCH])
        tick = time.perf_counter()
        for s in range(1, steps):
            step(order[s * BATCH:(s + 1) * BATCH])
        rates[layout] = BATCH * (steps - 1) / (time.perf_counter() - tick)
    return rates


def table(names: Sequence[str], steps: int = 30, rounds: int = 3) -> Iterator[str]:
    """Markdown lines, one row per net: medians over ``rounds`` alternating runs, and the
    range of the ratio over the rounds (each round's jaxconv run against the PyTorch loop right
    after it), since a machine's speed drifts between and within runs.

    Raises:
      ValueError: at the call (not at the first line) when ``rounds`` is below 1."""
    if rounds < 1:
        raise ValueError(f"fit.table: rounds={rounds}; expected at least 1")
    return _lines(names, steps, rounds)


def _lines(names: Sequence[str], steps: int, rounds: int) -> Iterator[str]:
    yield (f"Whole fit epochs: {steps} steps of batch {BATCH} of {'x'.join(map(str, IMAGE))}, "
           f"SGD momentum, images/s (compilation excluded; median of {rounds} alternating "
           "rounds, and the lowest and highest ratio of a round).")
    yield ""
    yield ("| net | jaxconv fit | PyTorch loop (best layout) | jaxconv / PyTorch | "
           "per round |")
    yield "|---|---:|---:|---:|---:|"
    for name in names:
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(jaxconv_fit(name, steps))
            theirs.append(max(torch_fit(name, steps).values(), default=float("nan")))
        a, b = float(np.median(ours)), float(np.median(theirs))
        ratios = np.asarray(ours) / np.asarray(theirs)
        yield (f"| {name} | {a:.0f} | {b:.0f} | {a / b:.2f} | "
               f"{ratios.min():.2f}-{ratios.max():.2f} |")
