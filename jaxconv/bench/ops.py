"""Op benchmark: each formulation of a conv against lax (what Flax users get) and PyTorch.

fp32, channels-last, forward + backward = gradient of ``sum(out ** 2)`` with respect to input
and kernel; the median over repeats after warm-up, the contenders alternated within one
process. PyTorch (``pip install -e '.[bench]'``) runs NCHW and channels_last; the better counts.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv import functional
from jaxconv.tuning.timing import median_ms


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    x: tuple[int, ...]            # NHWC (or NDHWC / NLC)
    kernel: tuple[int, ...]       # spatial sizes
    out: int
    strides: int = 1
    dilation: int = 1
    groups: int = 1
    transpose: bool = False


CASES = [
    Case("1x1 128->128, 32x32", (64, 32, 32, 128), (1, 1), 128),
    Case("3x3 64->64, 32x32", (64, 32, 32, 64), (3, 3), 64),
    Case("3x3 128->128, 16x16", (64, 16, 16, 128), (3, 3), 128),
    Case("3x3 stride 2 64->64, 32x32", (64, 32, 32, 64), (3, 3), 64, strides=2),
    Case("dilated 3x3 (2) 64->64, 32x32", (64, 32, 32, 64), (3, 3), 64, dilation=2),
    Case("depthwise 3x3 C=128, 16x16", (64, 16, 16, 128), (3, 3), 128, groups=128),
    Case("depthwise 7x7 C=128, 16x16", (64, 16, 16, 128), (7, 7), 128, groups=128),
    Case("grouped 3x3 128->128 g=4, 16x16", (64, 16, 16, 128), (3, 3), 128, groups=4),
    Case("grouped 3x3 128->128 g=32, 16x16", (64, 16, 16, 128), (3, 3), 128, groups=32),
    Case("transposed 3x3 s2 64->32, 16x16", (64, 16, 16, 64), (3, 3), 32, strides=2,
         transpose=True),
    Case("3-D 3x3x3 32->32, 16^3", (8, 16, 16, 16, 32), (3, 3, 3), 32),
    Case("1-D k=5 64->64, L=1024", (64, 1024, 64), (5,), 64),
    Case("3x3 stem 1->32, 28x28, batch 128", (128, 28, 28, 1), (3, 3), 32),
]


def jax_fns(case: Case, impl: str):
    if case.transpose:
        def op(x, k):
            return functional.conv_transpose(x, k, strides=case.strides, impl=impl)
    else:
        def op(x, k):
            return functional.conv(x, k, strides=case.strides, kernel_dilation=case.dilation,
                                   feature_group_count=case.groups, impl=impl)

    def loss(x, k):
        return jnp.sum(op(x, k) ** 2)

    return jax.jit(op), jax.jit(jax.grad(loss, argnums=(0, 1)))


def kernel_shape(case: Case):
    if case.transpose:
        return (*case.kernel, case.out, case.x[-1])
    return (*case.kernel, case.x[-1] // case.groups, case.out)


def torch_fns(case: Case):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    rank = len(case.kernel)
    cls = getattr(torch.nn, f"ConvTranspose{rank}d" if case.transpose else f"Conv{rank}d")
    kwargs = dict(stride=case.strides, bias=False)
    if case.transpose:
        layer = cls(case.x[-1], case.out, case.kernel, padding=1, output_padding=1, **kwargs)
    else:
        layer = cls(case.x[-1], case.out, case.kernel, padding="same" if case.strides == 1
                    else case.kernel[0] // 2, dilation=case.dilation, groups=case.groups,
                    **kwargs)
    x = torch.randn(case.x[0], case.x[-1], *case.x[1:-1], requires_grad=True)
    results = {}
    for layout in ("nchw", "channels_last"):
        xl, ll = x, layer
        if layout == "channels_last" and rank in (2, 3):
            fmt = torch.channels_last if rank == 2 else torch.channels_last_3d
            xl = x.detach().to(memory_format=fmt).requires_grad_(True)
            ll = layer.to(memory_format=fmt)
        elif layout == "channels_last":
            continue

        def forward(xl=xl, ll=ll):
            with torch.no_grad():
                return ll(xl)

        def both(xl=xl, ll=ll):
            out = ll(xl)
            (out ** 2).sum().backward()
            return out

        results[layout] = (forward, both)
    return results


def time_torch(fns, repeats):
    best = {}
    for forward, both in fns.values():
        for name, fn in (("fwd", forward), ("both", both)):
            fn()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            best[name] = min(best.get(name, np.inf), 1e3 * float(np.median(times)))
    return best


def run_case(case: Case, repeats: int):
    r = np.random.default_rng(0)
    x = jnp.asarray(r.standard_normal(case.x), jnp.float32)
    k = jnp.asarray(r.standard_normal(kernel_shape(case)) * 0.05, jnp.float32)
    op = "conv_transpose" if case.transpose else "conv"
    kwargs = dict(strides=case.strides) if case.transpose else dict(
        strides=case.strides, kernel_dilation=case.dilation, feature_group_count=case.groups)
    plan = functional.plan(x, k, op=op, **kwargs)
    impls = ["xla", *[n for n, why in plan.candidates.items() if why is None and n != "xla"]]
    fns = {impl: jax_fns(case, impl) for impl in impls}
    timings = {impl: {"fwd": [], "both": []} for impl in impls}
    for _ in range(3):
        for impl, (forward, both) in fns.items():
            timings[impl]["fwd"].append(median_ms(forward, (x, k), repeats))
            timings[impl]["both"].append(median_ms(both, (x, k), repeats))
    ms = {impl: {key: float(np.median(v)) for key, v in t.items()} for impl, t in
          timings.items()}
    torch = torch_fns(case)
    return plan, ms, (time_torch(torch, repeats) if torch else None)


def table(repeats: int, cases: Sequence[str] = ()) -> Iterator[str]:
    """Markdown lines, one row per case (as it is measured) of `CASES` whose name contains one
    of ``cases`` (all when empty)."""
    yield "ms, median; fwd+bwd = grad of sum(out**2) w.r.t. input and kernel; onednn: the " \
          "native formulation where the extension is built and expresses the case."
    yield ""
    yield ("| case | auto picks | xla fwd | xla fwd+bwd | best other fwd+bwd | onednn fwd+bwd | "
           "auto fwd+bwd | PyTorch fwd+bwd | auto / xla | auto / PyTorch |")
    yield "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for case in CASES:
        if cases and not any(c in case.name for c in cases):
            continue
        plan, ms, torch = run_case(case, repeats)
        others = {i: t["both"] for i, t in ms.items() if i != "xla"}
        best = min(others.items(), key=lambda kv: kv[1]) if others else None
        auto = ms[plan.impl]["both"]
        onednn = f"{ms['onednn']['both']:.1f}" if "onednn" in ms else "-"
        torch_both = torch["both"] if torch else float("nan")
        yield (f"| {case.name} | {plan.impl} | {ms['xla']['fwd']:.1f} | {ms['xla']['both']:.1f} "
               f"| {f'{best[0]} {best[1]:.1f}' if best else '-'} | {onednn} | {auto:.1f} | "
               f"{torch_both:.1f} | {auto / ms['xla']['both']:.2f} | "
               f"{auto / torch_both:.2f} |")
