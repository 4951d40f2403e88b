"""Each block family's reference initialisation, applied to built blocks and models.

A layer built with its defaults draws kernels as Flax does (LeCun normal, fan-in). The papers and
reference implementations of the bottleneck designs draw them differently, and the difference
shows in short training runs, so a study that compares designs starts each one the way its
reference does. `SCHEMES` names, per registry block, the kernel initialiser for every conv in
the block (including its 1x1s, squeeze-excitation and projection shortcut), the classifier's
initialiser, and whether the last BatchNorm scale of each residual branch starts at zero:

=================  =============================================  ==================  ====
block              conv kernels                                   classifier          zero
=================  =============================================  ==================  ====
basic, bottleneck  He normal, fan-out (torchvision ResNet)        U(±1/sqrt(fan-in))  yes
resnext            (as bottleneck)                                (as bottleneck)     yes
separable          He normal, fan-out (torchvision MobileNetV2)   N(0, 0.01)          no
inverted_residual  He normal, fan-out (torchvision MobileNetV2)   N(0, 0.01)          no
shuffle            std 1/(C_in per group) (ShuffleNet, Megvii;    N(0, 0.01)          no
                   the stem N(0, 0.01))
fire               He uniform, fan-in (torchvision SqueezeNet)    N(0, 0.01)          --
convnext           truncated N(0, 0.02) at ±2 (ConvNeXt, FAIR)    as the convs        --
inception          truncated N(0, 0.01) at ±2 (torchvision        as the convs        --
                   GoogLeNet)
nin                He normal, fan-in (NIN predates He init; its   N(0, 0.01)          --
                   Caffe files fix a std per layer)
=================  =============================================  ==================  ====

"zero" is ``zero_init_residual``'s default: the ResNet family's follows timm
(``zero_init_last=True``) and Goyal et al. 2017 (arXiv:1706.02677); torchvision's MobileNetV2
and ShuffleNet start every BatchNorm at one. "--" marks blocks without a BatchNorm-ended residual
branch. Conv biases start at zero (the ResNet family's classifier bias as ``torch.nn.Linear``'s,
``U(±1/sqrt(fan-in))``; the others' at zero), BatchNorm at scale one and bias zero (Megvii's
ShuffleNet starts BatchNorm biases at 1e-4; here zero), and ConvNeXt's layer scale at its
``layer_scale`` option. Fans are PyTorch's: fan-in ``k^d C_in / groups``, fan-out
``k^d C_out``.

A data-derived init of the stem lives here too: `whiten_stem` sets the first conv's filters to
the principal directions of the training images' patches, scaled to unit variance
(airbench's patch-PCA whitening, Jordan 2024, arXiv:2404.00498); the training recipe applies it
(``Recipe.stem_init``), since it needs the data. So does the identity init of `dirac_blocks`
(``Recipe.dirac_init``), which starts every spatial conv of the blocks with identity filters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv import nnx as jnn
from jaxconv.blocks import registry

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]

#: Layers whose ``kernel`` fans come from axes -2 (in) and -1 (out). For a transposed conv's
#: ``(*k, C_out / groups, C_in)`` kernel that swaps them, which is PyTorch's own convention
#: for its ``(C_in, C_out / groups, *k)`` weight, so the fans still match PyTorch's.
CONV_LAYERS = (jnn.Conv, jnn.Pointwise, jnn.DepthwiseConv, jnn.ConvTranspose)


def he_normal_fan_out() -> Initializer:
    """``N(0, 2 / fan_out)``, PyTorch's ``kaiming_normal_(mode="fan_out")``."""
    return jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def he_normal_fan_in() -> Initializer:
    return jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def he_uniform_fan_in() -> Initializer:
    """PyTorch's ``kaiming_uniform_()`` with its defaults: ``U(±sqrt(6 / fan_in))``."""
    return jax.nn.initializers.variance_scaling(2.0, "fan_in", "uniform")


def torch_linear() -> Initializer:
    """``torch.nn.Linear``'s default kernel: ``U(±1 / sqrt(fan_in))``."""
    return jax.nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def truncated(stddev: float, bound: float = 2.0) -> Initializer:
    """``N(0, stddev)`` cut at ``±bound`` in absolute value, as ``torch.nn.init.trunc_normal_``
    (whose bound is in the values' units, not in standard deviations)."""
    def init(key, shape, dtype=jnp.float32):
        z = jax.random.truncated_normal(key, -bound / stddev, bound / stddev, shape)
        return (stddev * z).astype(dtype)
    return init


def inverse_fan_in_channels() -> Initializer:
    """``N(0, 1 / (C_in / groups))``: ShuffleNet's reference draws the std (not the variance)
    from the input channels per group, without the kernel's area."""
    def init(key, shape, dtype=jnp.float32):
        return (jax.random.normal(key, shape) / shape[-2]).astype(dtype)
    return init


@dataclasses.dataclass(frozen=True)
class Scheme:
    """One block family's reference initialisation (see the module's table)."""

    conv: Initializer
    classifier: Initializer
    zero_init_residual: bool
    source: str
    stem: Initializer | None = None        # the first conv, when not as the others
    classifier_bias_fan_in: bool = False   # U(+-1/sqrt(fan_in)) as torch.nn.Linear, not zeros


_RESNET = Scheme(he_normal_fan_out(), torch_linear(), True,
                 "torchvision ResNet; zero-init last BN as timm", classifier_bias_fan_in=True)
_MOBILE = Scheme(he_normal_fan_out(), jax.nn.initializers.normal(0.01), False,
                 "torchvision MobileNetV2")

SCHEMES: dict[str, Scheme] = {
    "basic": _RESNET,
    "bottleneck": _RESNET,
    "resnext": _RESNET,
    "separable": _MOBILE,
    "inverted_residual": _MOBILE,
    "shuffle": Scheme(inverse_fan_in_channels(), jax.nn.initializers.normal(0.01), False,
                      "ShuffleNet v1 (Megvii)", stem=jax.nn.initializers.normal(0.01)),
    "fire": Scheme(he_uniform_fan_in(), jax.nn.initializers.normal(0.01), False,
                   "torchvision SqueezeNet"),
    "convnext": Scheme(truncated(0.02), truncated(0.02), False, "ConvNeXt (FAIR)"),
    "inception": Scheme(truncated(0.01), truncated(0.01), False, "torchvision GoogLeNet"),
    "nin": Scheme(he_normal_fan_in(), jax.nn.initializers.normal(0.01), False,
                  "He normal, fan-in"),
}


def scheme(block: str) -> Scheme:
    """The reference scheme of a registry block name."""
    if block not in SCHEMES:
        raise registry._unknown("block", block, list(SCHEMES))
    return SCHEMES[block]


def _redraw(param: nnx.Param, init: Initializer, key: jax.Array) -> None:
    value = param[...]
    param[...] = init(key, value.shape, value.dtype)


def _zero(param: nnx.Param | None) -> None:
    if param is not None:
        param[...] = jnp.zeros_like(param[...])


def init_convs(module: nnx.Module, init: Initializer, key: jax.Array) -> None:
    """Redraws the kernel of every conv layer in ``module`` (in place) and zeroes their biases."""
    layers = [m for _, m in nnx.iter_modules(module) if isinstance(m, CONV_LAYERS)]
    for layer, k in zip(layers, jax.random.split(key, max(len(layers), 1))):
        _redraw(layer.kernel, init, k)
        _zero(layer.bias)


def init_classifier(layer: nnx.Linear, scheme: Scheme, key: jax.Array) -> None:
    kernel_key, bias_key = jax.random.split(key)
    _redraw(layer.kernel, scheme.classifier, kernel_key)
    if layer.bias is None:
        return
    if scheme.classifier_bias_fan_in:
        bound = 1.0 / float(layer.kernel[...].shape[0]) ** 0.5
        _redraw(layer.bias, jax.nn.initializers.uniform(2 * bound), bias_key)
        layer.bias[...] = layer.bias[...] - bound
    else:
        _zero(layer.bias)


def residual_norm(block: nnx.Module) -> nnx.BatchNorm | None:
    """The BatchNorm that ends ``block``'s residual branch, or None when it has none."""
    find = getattr(block, "residual_norm", None)
    return find() if find is not None else None


def init_block(block: nnx.Module, name: str, key: jax.Array, *,
               zero_init_residual: bool | None = None) -> None:
    """Applies block ``name``'s reference scheme to a built block, in place.

    ``zero_init_residual`` (None: the family's default) sets the scale of the BatchNorm that ends
    the residual branch to zero, so the block starts as its shortcut.
    """
    chosen = scheme(name)
    init_convs(block, chosen.conv, key)
    zero = chosen.zero_init_residual if zero_init_residual is None else zero_init_residual
    if zero:
        norm = residual_norm(block)
        if norm is not None:
            _zero(norm.scale)


#: Added to each eigenvalue before its inverse square root in `whitening_kernel` (airbench's).
WHITEN_EPS = 5e-4


def patch_moments(images: np.ndarray, kernel_size: tuple[int, int],
                  chunk: int = 256) -> np.ndarray:
    """The ``(d, d)`` second-moment matrix, ``d = kh * kw * C``, of every ``kh x kw`` patch at
    every valid position of float ``images`` ``(N, H, W, C)``, flattened in the ``(kh, kw, C)``
    order of an HWIO kernel. Summed ``chunk`` images at a time, in float64."""
    kh, kw = kernel_size
    d = kh * kw * images.shape[-1]
    total, count = np.zeros((d, d)), 0
    for start in range(0, len(images), chunk):
        windows = np.lib.stride_tricks.sliding_window_view(
            images[start:start + chunk].astype(np.float64), (kh, kw), axis=(1, 2))
        patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, d)
        total += patches.T @ patches
        count += len(patches)
    return total / count


def whitening_kernel(images: np.ndarray, kernel: np.ndarray,
                     eps: float = WHITEN_EPS) -> np.ndarray:
    """``kernel`` (HWIO, ``(kh, kw, C, F)``) with its first ``2m`` filters replaced, where
    ``m = min(kh * kw * C, F // 2)``: filter ``i < m`` is the ``i``-th principal direction of
    the patches of ``images`` (largest first) divided by ``sqrt(eigenvalue + eps)``, and filter
    ``m + i`` its negative (after a ReLU the pair keeps both signs). On those patches the
    first ``m`` outputs are uncorrelated, output ``i`` with second moment
    ``eigenvalue_i / (eigenvalue_i + eps)``. The other filters are kept as they are."""
    kh, kw, cin, features = kernel.shape
    if images.shape[-1] != cin:
        raise ValueError(f"images: {images.shape[-1]} channels, but the kernel of shape "
                         f"{kernel.shape} takes {cin}")
    eigenvalues, eigenvectors = np.linalg.eigh(patch_moments(images, (kh, kw)))
    order = np.argsort(eigenvalues)[::-1]
    m = min(len(order), features // 2)
    filters = eigenvectors[:, order[:m]] / np.sqrt(np.maximum(eigenvalues[order[:m]], 0) + eps)
    flat = np.array(kernel, np.float64).reshape(-1, features)
    flat[:, :m], flat[:, m:2 * m] = filters, -filters
    return flat.reshape(kernel.shape).astype(np.asarray(kernel).dtype)


def stem_conv(model: nnx.Module) -> nnx.Module:
    """The first conv layer of ``model``'s ``stem`` (as `jaxconv.models.ConvNet` has)."""
    stem = getattr(model, "stem", None)
    layers = [] if stem is None else [m for _, m in nnx.iter_modules(stem)
                                      if isinstance(m, CONV_LAYERS)]
    if not layers:
        raise ValueError(f"stem_init: whitening needs a model with a `stem` holding a conv "
                         f"layer; {type(model).__name__} has none")
    return layers[0]


def whiten_stem(model: nnx.Module, images: np.ndarray, eps: float = WHITEN_EPS) -> None:
    """Sets the kernel of ``model``'s stem conv to `whitening_kernel` of ``images`` (float,
    normalised as the model sees them), in place."""
    conv = stem_conv(model)
    if getattr(conv, "feature_group_count", 1) != 1:
        raise ValueError(f"stem_init: whitening needs a dense stem conv, not "
                         f"feature_group_count={conv.feature_group_count}")
    kernel = np.asarray(conv.kernel[...])
    if kernel.ndim != 4:
        raise ValueError(f"stem_init: whitening needs a 2-D conv stem (an HWIO kernel), not a "
                         f"kernel of shape {kernel.shape}")
    conv.kernel[...] = jnp.asarray(whitening_kernel(images, kernel, eps), conv.kernel[...].dtype)


def dirac_kernel(kernel: np.ndarray, groups: int) -> np.ndarray:
    """``kernel`` (``(*k, C_in / groups, C_out)``, odd sizes) with its identity filters set:
    output ``o`` of group ``g`` (``C_out / groups`` outputs per group) becomes the identity on
    its group's input ``o mod (C_out / groups)`` where that input exists (a delta at the
    kernel's centre, zero elsewhere); the other filters are kept. A conv with that kernel, at
    stride 1 with SAME padding, passes those inputs through unchanged (airbench's partial
    dirac init; ``torch.nn.init.dirac_``)."""
    *spatial, in_per_group, features = kernel.shape
    if any(size % 2 == 0 for size in spatial):
        raise ValueError(f"dirac_init: a kernel of even size {tuple(spatial)} has no centre")
    out_per_group = features // groups
    out = np.array(kernel)
    centre = tuple(size // 2 for size in spatial)
    for o in range(features):
        j = o % out_per_group
        if j < in_per_group:
            out[..., o] = 0
            out[(*centre, j, o)] = 1
    return out


def dirac_blocks(model: nnx.Module) -> int:
    """Sets identity filters (`dirac_kernel`) in every conv and depthwise conv with a spatial
    kernel of odd sizes larger than 1 in ``model.blocks``, in place; 1x1s, transposed convs and
    the stem keep their init. Returns how many layers it set."""
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise ValueError(f"dirac_init: needs a model with `blocks` (as ConvNet has); "
                         f"{type(model).__name__} has none")
    count = 0
    for _, layer in nnx.iter_modules(blocks):
        if not isinstance(layer, jnn.Conv | jnn.DepthwiseConv):
            continue
        kernel = np.asarray(layer.kernel[...])
        spatial = kernel.shape[:-2]
        if all(size == 1 for size in spatial) or any(size % 2 == 0 for size in spatial):
            continue
        groups = layer.in_features // kernel.shape[-2]
        layer.kernel[...] = jnp.asarray(dirac_kernel(kernel, groups), layer.kernel[...].dtype)
        count += 1
    return count
