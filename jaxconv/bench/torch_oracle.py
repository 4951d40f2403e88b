"""PyTorch autograd in float64 as an independent oracle for a conv's value and gradients.

Used by the formulation fuzz (`jaxconv.bench.fuzz`) where PyTorch is installed; never a
dependency of the package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: NumPy's ``np.pad`` mode for each non-zero fill, applied to indices (so any pad width works,
#: as with ``jnp.pad``; ``torch.nn.functional.pad`` refuses a reflect pad as wide as the dim).
INDEX_MODES = {"circular": "wrap", "reflect": "reflect", "replicate": "edge"}


def available() -> bool:
    """Whether ``torch`` imports here."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_pads(pads: Sequence[tuple[int, int]]) -> list[int]:
    """``torch.nn.functional.pad``'s order (last dim first) for per-dim ``(low, high)``; a
    negative amount crops."""
    return [int(v) for lo, hi in reversed(pads) for v in (lo, hi)]


def _fill(nc, pads: Sequence[tuple[int, int]], fill: str):
    """Pads the spatial dims of an ``(N, C, *spatial)`` tensor with a non-zero fill by
    gathering indices, which autograd follows."""
    import torch

    for axis, (lo, hi) in enumerate(pads, start=2):
        index = np.pad(np.arange(nc.shape[axis]), (lo, hi), mode=INDEX_MODES[fill])
        nc = nc.index_select(axis, torch.as_tensor(index))
    return nc


def reference(op: str, x_shape: Sequence[int], kernel_shape: Sequence[int],
              kwargs: Mapping[str, Any], x, k, cotangent) -> tuple[np.ndarray, ...] | None:
    """Output and input and kernel gradients of ``<y, cotangent>`` in float64, or None when
    PyTorch is not installed.

    ``y`` is ``torch.nn.functional.conv{1,2,3}d`` (``op="conv"``) on the filled, zero-interleaved
    (``input_dilation``) and zero-padded input, or ``conv_transpose{1,2,3}d`` cropped to the
    output (``op="conv_transpose"``); ``kwargs`` are `jaxconv.functional.conv`'s or
    ``conv_transpose``'s. The explicit pads and fill are jaxconv's resolution of the padding
    arguments (checked against their definitions on their own in the test suite).
    """
    if not available():
        return None
    import torch

    from jaxconv.functional.conv import prepare
    from jaxconv.functional.transpose import prepare_transpose

    rank = len(kernel_shape) - 2
    xs = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    ks = torch.tensor(np.asarray(k, np.float64), requires_grad=True)
    nc = xs.permute(0, rank + 1, *range(1, rank + 1)).contiguous()
    weight = ks.permute(rank + 1, rank, *range(rank)).contiguous()
    ops = torch.nn.functional
    if op == "conv":
        prepared = prepare(x_shape, kernel_shape, op="conv", **kwargs)
        spec = prepared.spec
        if prepared.fill != "zeros":
            nc = _fill(nc, prepared.fill_pads, prepared.fill)
        if any(d != 1 for d in spec.input_dilation):
            sizes = [(n - 1) * d + 1 for n, d in zip(nc.shape[2:], spec.input_dilation)]
            spread = nc.new_zeros((*nc.shape[:2], *sizes))
            spread[(slice(None), slice(None),
                    *(slice(None, None, d) for d in spec.input_dilation))] = nc
            nc = spread
        nc = ops.pad(nc, _torch_pads(spec.padding))
        y = getattr(ops, f"conv{rank}d")(nc, weight, stride=spec.strides,
                                         dilation=spec.kernel_dilation,
                                         groups=spec.feature_group_count)
    else:
        spec = prepare_transpose(x_shape, kernel_shape, **kwargs)
        full = getattr(ops, f"conv_transpose{rank}d")(
            nc, weight, stride=spec.input_dilation, dilation=spec.kernel_dilation,
            groups=spec.feature_group_count)
        windows = [(n - 1) * d + 1 for n, d in zip(kernel_shape[:rank], spec.kernel_dilation)]
        crop = []
        for w, (forward_low, _), length, size in zip(windows, spec.padding, full.shape[2:],
                                                      spec.output_shape[1:-1]):
            low = w - 1 - forward_low          # the transposed conv's own low padding
            crop.append((-low, low + size - length))
        y = ops.pad(full, _torch_pads(crop))
    y = y.permute(0, *range(2, rank + 2), 1)
    (y * torch.tensor(np.asarray(cotangent, np.float64))).sum().backward()
    return y.detach().numpy(), xs.grad.numpy(), ks.grad.numpy()
