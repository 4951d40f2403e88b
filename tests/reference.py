"""An independent NumPy convolution, written plainly: the oracle the numerics tests trust.

It shares no code with jaxconv: padding amounts are re-derived here from their definitions, the
convolution is a loop over output positions, and the transposed convolution is the scatter-add
that defines it (every input position adds its kernel-weighted copy into the output).
"""

from __future__ import annotations

import math

import numpy as np

FILL = {"circular": "wrap", "reflect": "reflect", "replicate": "edge"}
SHORTCUTS = {"CIRCULAR": "circular", "REFLECT": "reflect", "REPLICATE": "replicate"}


def dilated(size: int, dilation: int) -> int:
    return (size - 1) * dilation + 1


def pad_amounts(padding, sizes, windows, strides):
    """(low, high) per dim from each padding form's definition."""
    if isinstance(padding, str):
        name = padding.upper()
        if name == "SAME":
            out = []
            for n, w, s in zip(sizes, windows, strides):
                total = max((math.ceil(n / s) - 1) * s + w - n, 0)
                out.append((total // 2, total - total // 2))
            return out
        if name == "VALID":
            return [(0, 0)] * len(sizes)
        if name == "CAUSAL":
            return [(w - 1, 0) for w in windows]
        return [((w - 1) // 2, w // 2) for w in windows]
    if isinstance(padding, int):
        return [(padding, padding)] * len(sizes)
    return [(p, p) if isinstance(p, int) else tuple(p) for p in padding]


def _dilate(a: np.ndarray, axes, factors) -> np.ndarray:
    shape = list(a.shape)
    for ax, f in zip(axes, factors):
        shape[ax] = dilated(a.shape[ax], f)
    out = np.zeros(shape, a.dtype)
    index = [slice(None)] * a.ndim
    for ax, f in zip(axes, factors):
        index[ax] = slice(None, None, f)
    out[tuple(index)] = a
    return out


def conv(x, k, *, strides, padding, fill="zeros", input_dilation=None, kernel_dilation=None,
         groups=1):
    """Batched ``(N, *S, C)`` input, HWIO kernel; returns float64."""
    x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
    rank = k.ndim - 2
    input_dilation = input_dilation or (1,) * rank
    kernel_dilation = kernel_dilation or (1,) * rank
    if isinstance(padding, str) and padding.upper() in SHORTCUTS:
        fill = SHORTCUTS[padding.upper()]
    xd = _dilate(x, range(1, rank + 1), input_dilation)
    kd = _dilate(k, range(rank), kernel_dilation)
    windows = kd.shape[:rank]
    pads = pad_amounts(padding, xd.shape[1:-1], windows, strides)
    width = [(0, 0), *pads, (0, 0)]
    xp = np.pad(xd, width) if fill == "zeros" else np.pad(xd, width, mode=FILL[fill])
    out_spatial = [(n - w) // s + 1 for n, w, s in zip(xp.shape[1:-1], windows, strides)]
    cin_g, cout = k.shape[-2], k.shape[-1]
    cout_g = cout // groups
    y = np.zeros((x.shape[0], *out_spatial, cout))
    for pos in np.ndindex(*out_spatial):
        window = xp[(slice(None), *(slice(p * s, p * s + w)
                                    for p, s, w in zip(pos, strides, windows)))]
        for g in range(groups):
            patch = window[..., g * cin_g:(g + 1) * cin_g].reshape(x.shape[0], -1)
            taps = kd[..., g * cout_g:(g + 1) * cout_g].reshape(-1, cout_g)
            y[(slice(None), *pos, slice(g * cout_g, (g + 1) * cout_g))] = patch @ taps
    return y


def conv_transpose(x, k, *, strides, pads, output_padding, kernel_dilation, groups=1):
    """PyTorch's ConvTranspose by its definition; ``k`` is ``(*K, C_out // g, C_in)``."""
    x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
    rank = k.ndim - 2
    cout_g, cin = k.shape[-2], k.shape[-1]
    cin_g = cin // groups
    spatial = x.shape[1:-1]
    windows = [dilated(n, d) for n, d in zip(k.shape[:rank], kernel_dilation)]
    full = [(n - 1) * s + w for n, s, w in zip(spatial, strides, windows)]
    sizes = [f - lo - hi + op for f, (lo, hi), op in zip(full, pads, output_padding)]
    buf = np.zeros((x.shape[0], *[max(f, lo + n) for f, (lo, _), n in zip(full, pads, sizes)],
                    cout_g * groups))
    for pos in np.ndindex(*spatial):
        for tap in np.ndindex(*k.shape[:rank]):
            at = tuple(p * s + t * d for p, s, t, d in zip(pos, strides, tap, kernel_dilation))
            for g in range(groups):
                xin = x[(slice(None), *pos, slice(g * cin_g, (g + 1) * cin_g))]
                w = k[(*tap, slice(None), slice(g * cin_g, (g + 1) * cin_g))]
                buf[(slice(None), *at, slice(g * cout_g, (g + 1) * cout_g))] += xin @ w.T
    return buf[(slice(None), *(slice(lo, lo + n) for (lo, _), n in zip(pads, sizes)))]


def pool(x, window, *, kind, strides, padding, fill="zeros", dilation=None,
         count_include_pad=True):
    """Max or average pool of a batched ``(N, *S, C)`` input, a loop over output positions;
    returns float64. Zero-fill padding is empty: never the max, a zero or absent in the mean."""
    x = np.asarray(x, np.float64)
    rank = len(window)
    dilation = dilation or (1,) * rank
    reach = [dilated(w, d) for w, d in zip(window, dilation)]
    if isinstance(padding, str) and padding.upper() in SHORTCUTS:
        fill = SHORTCUTS[padding.upper()]
    pads = pad_amounts(padding, x.shape[1:-1], reach, strides)
    widths = [(0, 0), *pads, (0, 0)]
    real = np.pad(np.ones(x.shape[1:-1]), pads)
    if fill == "zeros":
        x = np.pad(x, widths)
    else:
        x = np.pad(x, widths, mode=FILL[fill])
        real = np.ones_like(real)
    out_sizes = [(n - r) // s + 1 for n, r, s in zip(x.shape[1:-1], reach, strides)]
    out = np.zeros((x.shape[0], *out_sizes, x.shape[-1]))
    for pos in np.ndindex(*out_sizes):
        index = tuple(slice(p * s, p * s + r, d)
                      for p, s, r, d in zip(pos, strides, reach, dilation))
        taps = x[(slice(None), *index)].reshape(x.shape[0], -1, x.shape[-1])
        inside = real[index].reshape(-1).astype(bool)
        if kind == "max":
            out[(slice(None), *pos)] = taps[:, inside].max(axis=1)
        else:
            count = taps.shape[1] if count_include_pad else inside.sum()
            out[(slice(None), *pos)] = taps[:, inside].sum(axis=1) / count
    return out
