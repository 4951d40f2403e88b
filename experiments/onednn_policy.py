"""The measurements behind the ``onednn`` rows of the formulation policy (versions 2 and 3):
each case's forward and both gradients, jitted, by the formulation version 1 of the policy picks
and by ``onednn``, alternating, several rounds, on this machine. The bench's op cases (batch
64, 16-32 px maps), the shapes of the study nets (batch 128 of 28x28 images after a stride-2
stem: 14x14 and 7x7 maps, 16-96 channels) and those of the bench nets (`NETS`: no stem stride,
28x28 to 7x7 maps, 16-256 channels) are timed, since a native call's fixed cost weighs more
on small maps.

Run on a quiet machine (nothing else on the cores):
``.venv/bin/python experiments/onednn_policy.py [--repeats N] [--rounds R] > FILE.md``
"""

from __future__ import annotations

import argparse
import datetime
import subprocess

import jax
import numpy as np

from jaxconv import functional
from jaxconv.bench.ops import CASES, Case, jax_fns, kernel_shape
from jaxconv.tuning import machine, native
from jaxconv.tuning.timing import median_ms

#: The study nets' convolutions (`jaxconv.models.presets`' ~0.3M designs at batch 128).
STUDY = [
    Case("study stem 3x3 s2 1->24, 28x28", (128, 28, 28, 1), (3, 3), 24, strides=2),
    Case("study 1x1 24->96, 14x14", (128, 14, 14, 24), (1, 1), 96),
    Case("study 1x1 96->24, 14x14", (128, 14, 14, 96), (1, 1), 24),
    Case("study 1x1 64->16, 7x7", (128, 7, 7, 64), (1, 1), 16),
    Case("study depthwise 3x3 C=96, 14x14", (128, 14, 14, 96), (3, 3), 96, groups=96),
    Case("study depthwise 3x3 s2 C=96, 14x14", (128, 14, 14, 96), (3, 3), 96, strides=2,
         groups=96),
    Case("study depthwise 7x7 C=48, 14x14", (128, 14, 14, 48), (7, 7), 48, groups=48),
    Case("study 3x3 16->16, 14x14", (128, 14, 14, 16), (3, 3), 16),
    Case("study 3x3 32->32, 7x7", (128, 7, 7, 32), (3, 3), 32),
    Case("study 3x3 s2 32->64, 14x14", (128, 14, 14, 32), (3, 3), 64, strides=2),
    Case("study grouped 3x3 64->64 g=8, 14x14", (128, 14, 14, 64), (3, 3), 64, groups=8),
    Case("study grouped 3x3 64->64 g=8, 7x7", (128, 7, 7, 64), (3, 3), 64, groups=8),
]

#: The bench nets' 1x1 and strided convolutions (`jaxconv.bench.nets` at batch 128 of 28x28
#: images, no stem stride: 28x28, 14x14 and 7x7 maps, 16-256 channels), behind version 3's rows.
NETS = [
    *[Case(f"resnet 1x1 {i}->{o}, {s}x{s}", (128, s, s, i), (1, 1), o)
      for i, o, s in ((32, 16, 28), (16, 64, 28), (32, 64, 28), (64, 16, 28), (64, 32, 28),
                      (32, 128, 14), (128, 32, 14), (128, 48, 14), (48, 256, 7), (256, 48, 7))],
    Case("resnet 1x1 s2 64->128, 28x28", (128, 28, 28, 64), (1, 1), 128, strides=2),
    Case("resnet 1x1 s2 128->256, 14x14", (128, 14, 14, 128), (1, 1), 256, strides=2),
    Case("resnet 3x3 s2 32->32, 28x28", (128, 28, 28, 32), (3, 3), 32, strides=2),
    Case("resnet 3x3 s2 48->48, 14x14", (128, 14, 14, 48), (3, 3), 48, strides=2),
    Case("resnet 3x3 48->48, 7x7", (128, 7, 7, 48), (3, 3), 48),
    *[Case(f"mobilenet 1x1 {i}->{o}, {s}x{s}", (128, s, s, i), (1, 1), o)
      for i, o, s in ((16, 64, 28), (64, 24, 28), (24, 64, 28), (24, 96, 28), (96, 48, 14),
                      (48, 96, 14), (48, 192, 14), (192, 96, 7), (96, 192, 7))],
]


def _v1_pick(case: Case, x, k) -> str:
    op = "conv_transpose" if case.transpose else "conv"
    kwargs = dict(strides=case.strides) if case.transpose else dict(
        strides=case.strides, kernel_dilation=case.dilation, feature_group_count=case.groups)
    spec_kwargs = dict(compilation=functional.Compilation(policy_version=1))
    return functional.plan(x, k, op=op, **kwargs, **spec_kwargs)


def measure(case: Case, repeats: int, rounds: int) -> tuple[str, str, dict[str, float]]:
    """(v1's pick, the shape class, median fwd+bwd ms per formulation) for one case."""
    r = np.random.default_rng(0)
    x = jax.numpy.asarray(r.standard_normal(case.x), jax.numpy.float32)
    k = jax.numpy.asarray(r.standard_normal(kernel_shape(case)) * 0.05, jax.numpy.float32)
    plan = _v1_pick(case, x, k)
    impls = [plan.impl] if plan.impl == "onednn" else [plan.impl, "onednn"]
    if plan.candidates.get("onednn") is not None:
        impls = [plan.impl]
    both = {impl: jax_fns(case, impl)[1] for impl in impls}
    times = {impl: [] for impl in impls}
    for _ in range(rounds):
        for impl, fn in both.items():
            times[impl].append(median_ms(fn, (x, k), repeats))
    return plan.impl, plan.shape_class, {i: float(np.median(t)) for i, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=[], help="substrings of case names")
    args = parser.parse_args()
    if not native.available():
        raise SystemExit(f"onednn_policy: {native.reason()}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"# onednn against policy version 1's picks ({machine.isa()}, "
          f"{machine.cores()} cores)\n")
    print(f"{datetime.date.today()}, commit {commit}, CPU: {machine.model()} "
          f"({machine.isa()}; flags include "
          f"{', '.join(sorted(f for f in machine.features() if f.startswith(('avx', 'amx'))))}"
          f"), jax {jax.__version__}, oneDNN {native.onednn_version()}. Forward + both "
          f"gradients of sum(out**2), jitted, float32; median of {args.repeats} calls, median "
          f"of {args.rounds} alternating rounds.\n")
    print("| case | shape class | v1 picks | v1 ms | onednn ms | onednn / v1 |")
    print("|---|---|---|---:|---:|---:|")
    for case in [*CASES, *STUDY, *NETS]:
        if args.cases and not any(s in case.name for s in args.cases):
            continue
        pick, shape_class, ms = measure(case, args.repeats, args.rounds)
        one = ms.get("onednn")
        ratio = f"{one / ms[pick]:.2f}" if one is not None and pick != "onednn" else "-"
        print(f"| {case.name} | {shape_class} | {pick} | {ms[pick]:.1f} | "
              f"{'-' if one is None else f'{one:.1f}'} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
