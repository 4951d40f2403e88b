"""Flax NNX convolution layers: parameters plus one call to `jaxconv.functional`.

`Conv` takes exactly ``flax.nnx.Conv``'s arguments (names, defaults, kernel and bias shapes,
initializers and the order they draw keys in), plus ``padding_mode``, ``impl`` and ``data_format``:
swapping the import changes nothing else. The other layers follow the same conventions.

``data_format="channels_first"`` (Keras's option) lets a layer take and return PyTorch's layout,
``(*batch, C, *spatial)``; it is a convenience that costs one transpose on the way in and one on
the way out, so a model that stays in jaxconv is faster channels-last throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import jax.numpy as jnp
from flax import nnx
from flax.nnx.nn import dtypes, initializers
from jax import lax

from jaxconv import functional
from jaxconv.functional import _checks
from jaxconv.nnx import layer_args
from jaxconv.typing import Array, ImplLike, IntOrSeq, PaddingLike

default_kernel_init = initializers.lecun_normal()
default_bias_init = initializers.zeros_init()


def _param(init: Callable, rngs: nnx.Rngs, shape, dtype, metadata: Mapping[str, Any]) -> nnx.Param:
    return nnx.Param(init(rngs.params(), shape, dtype), **metadata)


def _bias(init: Callable, rngs: nnx.Rngs, features: int, dtype, metadata: Mapping[str, Any],
          use_bias: bool) -> nnx.Param:
    """The ``(features,)`` bias, or ``None`` (kept as data) without ``use_bias``."""
    return _param(init, rngs, (features,), dtype, metadata) if use_bias else nnx.data(None)


def _operands(layer: nnx.Module, inputs: Array, name: str) -> tuple[Array, Array, Array | None]:
    """Checks the input against the layer, applies the mask, promotes dtypes like Flax."""
    layer_args.check_input_rank(inputs, layer.kernel_size, name)
    layer_args.check_in_features(inputs, layer.in_features, name)
    kernel = layer.kernel[...]
    if layer.mask is not None:
        kernel = kernel * layer.mask
    bias = layer.bias[...] if layer.bias is not None else None
    return layer.promote_dtype((inputs, kernel, bias), dtype=layer.dtype)


def _apply(layer: nnx.Module, op: Callable[..., Array], inputs: Array, name: str) -> Array:
    """The call of a layer with one (maskable) kernel: ``op``, its `jaxconv.functional` op, on
    the checked and promoted operands with the layer's `op_args`."""
    inputs, kernel, bias = _operands(layer, inputs, name)
    return op(inputs, kernel, bias, impl=layer.impl, **op_args(layer))


def _store(layer: nnx.Module, args: Mapping[str, Any]) -> None:
    """Keeps each op argument as its own hashable attribute; `op_args` reads them back at call
    time, so changing one after construction (``layer.padding = ...``) takes effect."""
    for name, value in args.items():
        setattr(layer, name, layer_args.frozen(value))


def op_args(layer: nnx.Module) -> dict[str, Any]:
    """The keyword arguments the layer passes to its `jaxconv.functional` op, with the
    `jaxconv.functional.Compilation` it was given by `set_compilation` (``None`` by
    default)."""
    args = {name: getattr(layer, name) for name in type(layer).op_args}
    return {**args, "compilation": getattr(layer, "compilation", None)}


def _padding_reach(padding: Any) -> int:
    """The largest explicit padding amount in ``padding`` (0 for a padding name)."""
    if isinstance(padding, str) or padding is None:
        return 0
    if _checks.integer(padding) is not None:
        return abs(_checks.integer(padding))
    if isinstance(padding, Sequence):
        return max((_padding_reach(p) for p in padding), default=0)
    return 0


def _validate(op: str, kernel_shape, in_features: int, impl: ImplLike, **op_args: Any) -> None:
    """Runs the op's own checks once, at construction, on an input large enough that only
    size-independent facts can fail (a layer that some input size could run is accepted); a
    named formulation is checked too ("auto" and "autotune" express every call, and are not
    run)."""
    rank = len(kernel_shape) - 2
    dilation = _checks.int_tuple("kernel_dilation", op_args.get("kernel_dilation", 1), rank)
    reach = 2 * _padding_reach(op_args.get("padding")) + 1
    spatial = tuple(k * d + reach for k, d in zip(kernel_shape[:-2], dilation))
    functional.plan((1, *spatial, in_features), kernel_shape, op=op,
                    impl="xla" if callable(impl) or impl in ("auto", "autotune") else impl,
                    **op_args)


class Conv(nnx.Module):
    """N-D convolution layer, a drop-in for ``flax.nnx.Conv``.

    Args:
      in_features, out_features: channels in and out.
      kernel_size: one int per spatial dim (an int means 1-D, as in Flax; such a layer refuses
        inputs with more than one batch axis instead of silently treating image rows as batch).
      strides, padding, input_dilation, kernel_dilation, feature_group_count: as in
        `jaxconv.functional.conv`.
      precision, preferred_element_type: as in `jaxconv.functional.conv`.
      padding_mode: ``"zeros"``, ``"circular"``, ``"reflect"`` or ``"replicate"``.
      impl: formulation (`jaxconv.functional.plan`); a custom ``conv_general_dilated`` replaces
        ``lax.conv_general_dilated`` in the ``"xla"`` formulation.
      data_format: ``"channels_last"`` (Flax's layout) or ``"channels_first"`` (inputs and
        outputs ``(*batch, C, *spatial)``, at the cost of two transposes).
      rngs: ``nnx.Rngs`` with a ``params`` stream.

    Parameters: ``kernel`` ``(*kernel_size, in_features // feature_group_count, out_features)``
    and ``bias`` ``(out_features,)``.

    >>> layer = Conv(3, 32, (3, 3), rngs=nnx.Rngs(0))
    >>> layer(jnp.ones((1, 64, 64, 3))).shape
    (1, 64, 64, 32)
    """

    op_args = ("strides", "padding", "padding_mode", "input_dilation", "kernel_dilation",
               "feature_group_count", "precision", "preferred_element_type")

    def __init__(
        self, in_features: int, out_features: int, kernel_size: int | Sequence[int],
        strides: IntOrSeq | None = 1, *, padding: PaddingLike = "SAME",
        input_dilation: IntOrSeq | None = 1, kernel_dilation: IntOrSeq | None = 1,
        feature_group_count: int = 1, use_bias: bool = True, mask: Array | None = None,
        dtype: Any = None, param_dtype: Any = jnp.float32, precision: Any = None,
        kernel_init: Callable = default_kernel_init, bias_init: Callable = default_bias_init,
        conv_general_dilated: Callable = lax.conv_general_dilated,
        promote_dtype: Callable = dtypes.promote_dtype, preferred_element_type: Any = None,
        rngs: nnx.Rngs, kernel_metadata: Mapping[str, Any] = MappingProxyType({}),
        bias_metadata: Mapping[str, Any] = MappingProxyType({}),
        padding_mode: str = "zeros", impl: ImplLike = "auto",
        data_format: str = "channels_last",
    ):
        size = layer_args.kernel_size_tuple(kernel_size, "Conv")
        kernel_shape = layer_args.kernel_shape("Conv", size, in_features, out_features,
                                               feature_group_count)
        conv_args = dict(strides=strides, padding=padding, padding_mode=padding_mode,
                         input_dilation=input_dilation, kernel_dilation=kernel_dilation,
                         feature_group_count=feature_group_count, precision=precision,
                         preferred_element_type=preferred_element_type)
        impl = conv_general_dilated if conv_general_dilated is not lax.conv_general_dilated \
            else impl
        _validate("conv", kernel_shape, in_features, impl, **conv_args)
        layer_args.check_mask(mask, kernel_shape, "Conv")
        self.kernel_shape = kernel_shape
        self.kernel = _param(kernel_init, rngs, kernel_shape, param_dtype, kernel_metadata)
        self.bias = _bias(bias_init, rngs, out_features, param_dtype, bias_metadata, use_bias)
        self.in_features, self.out_features = in_features, out_features
        self.kernel_size = layer_args.frozen(kernel_size)
        self.strides, self.padding = strides, padding
        self.input_dilation, self.kernel_dilation = input_dilation, kernel_dilation
        self.feature_group_count, self.use_bias, self.mask = feature_group_count, use_bias, mask
        self.dtype, self.param_dtype, self.precision = dtype, param_dtype, precision
        self.conv_general_dilated, self.promote_dtype = conv_general_dilated, promote_dtype
        self.preferred_element_type, self.padding_mode = preferred_element_type, padding_mode
        self.impl = impl
        self.data_format = layer_args.data_format(data_format, "Conv")
        _store(self, conv_args)

    @layer_args.channels_first_aware
    def __call__(self, inputs: Array) -> Array:
        return _apply(self, functional.conv, inputs, "Conv")


class Pointwise(nnx.Module):
    """1x1 convolution: a Dense layer applied at every (strided) position.

    Args:
      in_features, out_features: channels in and out.
      strides: 1, or one stride per spatial dim (the ``(C_in, C_out)`` kernel has no rank).
      feature_group_count: groups (ShuffleNet's grouped 1x1).
      impl: ``"auto"`` (a matmul), ``"matmul"`` or ``"xla"``.

    Parameters: ``kernel`` ``(in_features // feature_group_count, out_features)``
    (``flax.nnx.Linear``'s layout, and a 1x1 ``flax.nnx.Conv`` kernel without its unit dims) and
    ``bias`` ``(out_features,)``.

    >>> Pointwise(32, 8, rngs=nnx.Rngs(0))(jnp.ones((2, 16, 16, 32))).shape
    (2, 16, 16, 8)
    """

    def __init__(
        self, in_features: int, out_features: int, strides: IntOrSeq | None = 1, *,
        feature_group_count: int = 1, use_bias: bool = True, dtype: Any = None,
        param_dtype: Any = jnp.float32,
        precision: Any = None, kernel_init: Callable = default_kernel_init,
        bias_init: Callable = default_bias_init, promote_dtype: Callable = dtypes.promote_dtype,
        impl: ImplLike = "auto", data_format: str = "channels_last", rngs: nnx.Rngs,
        kernel_metadata: Mapping[str, Any] = MappingProxyType({}),
        bias_metadata: Mapping[str, Any] = MappingProxyType({}),
    ):
        self.strides = layer_args.strides_for_pointwise(strides, "Pointwise")
        groups = _checks.positive_int("feature_group_count", feature_group_count)
        kernel_shape = layer_args.kernel_shape("Pointwise", (), in_features, out_features, groups)
        rank = 1 if isinstance(self.strides, int) else len(self.strides)
        functional.plan((1, *(1,) * rank, in_features), kernel_shape, op="pointwise",
                        impl="xla" if callable(impl) or impl in ("auto", "autotune") else impl,
                        strides=self.strides, feature_group_count=groups)
        self.feature_group_count = groups
        self.kernel = _param(kernel_init, rngs, kernel_shape, param_dtype, kernel_metadata)
        self.bias = _bias(bias_init, rngs, out_features, param_dtype, bias_metadata, use_bias)
        self.in_features, self.out_features, self.use_bias = in_features, out_features, use_bias
        self.dtype, self.param_dtype, self.precision = dtype, param_dtype, precision
        self.promote_dtype, self.impl = promote_dtype, impl
        self.data_format = layer_args.data_format(data_format, "Pointwise")

    @layer_args.channels_first_aware
    def __call__(self, inputs: Array) -> Array:
        layer_args.check_in_features(inputs, self.in_features, "Pointwise")
        bias = self.bias[...] if self.bias is not None else None
        inputs, kernel, bias = self.promote_dtype((inputs, self.kernel[...], bias),
                                                  dtype=self.dtype)
        return functional.pointwise(inputs, kernel, bias, strides=self.strides,
                                    feature_group_count=self.feature_group_count,
                                    precision=self.precision, impl=self.impl,
                                    compilation=getattr(self, "compilation", None))


class DepthwiseConv(nnx.Module):
    """Depthwise convolution: each channel convolved with its own ``depth_multiplier`` filters.

    Parameters: ``kernel`` ``(*kernel_size, 1, in_features * depth_multiplier)`` (the kernel of
    ``flax.nnx.Conv(in_features, in_features * depth_multiplier, kernel_size,
    feature_group_count=in_features)``) and ``bias`` ``(in_features * depth_multiplier,)``.

    >>> DepthwiseConv(8, (3, 3), rngs=nnx.Rngs(0))(jnp.ones((2, 16, 16, 8))).shape
    (2, 16, 16, 8)

    Args:
      in_features: channels in.
      kernel_size: one int per spatial dim.
      strides: stride, or one per spatial dim.
      depth_multiplier: filters per input channel; the output has
        ``in_features * depth_multiplier`` channels.
      padding, padding_mode, kernel_dilation: as in `jaxconv.functional.conv`.
      use_bias: whether the layer has a bias.
      mask: a 0/1 array of the kernel's shape multiplied into the kernel (Flax's ``mask``).
      dtype: compute dtype (``None``: the inputs' and parameters' promoted dtype).
      param_dtype: dtype of the parameters.
      precision: ``lax.Precision`` of the conv.
      kernel_init, bias_init: initialisers, as in Flax.
      promote_dtype: how inputs and parameters are brought to one dtype, as in Flax.
      impl: formulation (`jaxconv.functional.plan`).
      data_format: ``"channels_last"`` or ``"channels_first"`` (two transposes).
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      kernel_metadata, bias_metadata: metadata of the ``nnx.Param``s, as in Flax.
    """

    op_args = ("strides", "padding", "padding_mode", "kernel_dilation", "precision")

    def __init__(
        self, in_features: int, kernel_size: int | Sequence[int], strides: IntOrSeq | None = 1,
        *, depth_multiplier: int = 1, padding: PaddingLike = "SAME",
        padding_mode: str = "zeros", kernel_dilation: IntOrSeq | None = 1,
        use_bias: bool = True, mask: Array | None = None, dtype: Any = None,
        param_dtype: Any = jnp.float32, precision: Any = None,
        kernel_init: Callable = default_kernel_init, bias_init: Callable = default_bias_init,
        promote_dtype: Callable = dtypes.promote_dtype, impl: ImplLike = "auto",
        data_format: str = "channels_last",
        rngs: nnx.Rngs, kernel_metadata: Mapping[str, Any] = MappingProxyType({}),
        bias_metadata: Mapping[str, Any] = MappingProxyType({}),
    ):
        size = layer_args.kernel_size_tuple(kernel_size, "DepthwiseConv")
        multiplier = _checks.positive_int("depth_multiplier", depth_multiplier)
        out_features = in_features * multiplier
        kernel_shape = layer_args.kernel_shape("DepthwiseConv", size, in_features, out_features)
        conv_args = dict(strides=strides, padding=padding, padding_mode=padding_mode,
                         kernel_dilation=kernel_dilation, precision=precision)
        _validate("depthwise_conv", kernel_shape, in_features, impl, **conv_args)
        layer_args.check_mask(mask, kernel_shape, "DepthwiseConv")
        self.kernel = _param(kernel_init, rngs, kernel_shape, param_dtype, kernel_metadata)
        self.bias = _bias(bias_init, rngs, out_features, param_dtype, bias_metadata, use_bias)
        self.in_features, self.out_features = in_features, out_features
        self.kernel_size = layer_args.frozen(kernel_size)
        self.depth_multiplier, self.mask = multiplier, mask
        self.use_bias, self.dtype, self.param_dtype = use_bias, dtype, param_dtype
        self.promote_dtype, self.impl = promote_dtype, impl
        self.data_format = layer_args.data_format(data_format, "DepthwiseConv")
        _store(self, conv_args)

    @layer_args.channels_first_aware
    def __call__(self, inputs: Array) -> Array:
        return _apply(self, functional.depthwise_conv, inputs, "DepthwiseConv")


class SeparableConv(nnx.Module):
    """Depthwise conv then a 1x1 conv, with one bias (MobileNetV1; Keras's ``SeparableConv``).

    Parameters: ``depthwise_kernel`` ``(*kernel_size, 1, in_features * depth_multiplier)``,
    ``pointwise_kernel`` ``(in_features * depth_multiplier, out_features)``, ``bias``
    ``(out_features,)``.

    >>> SeparableConv(8, 32, (3, 3), rngs=nnx.Rngs(0))(jnp.ones((2, 16, 16, 8))).shape
    (2, 16, 16, 32)

    Args:
      in_features, out_features: channels in and out.
      kernel_size: one int per spatial dim, of the depthwise conv.
      strides: stride of the depthwise conv, or one per spatial dim.
      depth_multiplier: depthwise filters per input channel.
      padding, padding_mode, kernel_dilation: as in `jaxconv.functional.conv`.
      use_bias: whether the layer has a bias (after the 1x1).
      dtype: compute dtype.
      param_dtype: dtype of the parameters.
      precision: ``lax.Precision`` of both convs.
      depthwise_init, pointwise_init, bias_init: initialisers of the two kernels and the bias.
      promote_dtype: how inputs and parameters are brought to one dtype, as in Flax.
      impl: formulation of the depthwise conv (`jaxconv.functional.plan`).
      data_format: ``"channels_last"`` or ``"channels_first"``.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
    """

    op_args = ("strides", "padding", "padding_mode", "kernel_dilation", "precision")

    def __init__(
        self, in_features: int, out_features: int, kernel_size: int | Sequence[int],
        strides: IntOrSeq | None = 1, *, depth_multiplier: int = 1,
        padding: PaddingLike = "SAME", padding_mode: str = "zeros",
        kernel_dilation: IntOrSeq | None = 1, use_bias: bool = True, dtype: Any = None,
        param_dtype: Any = jnp.float32, precision: Any = None,
        depthwise_init: Callable = default_kernel_init,
        pointwise_init: Callable = default_kernel_init, bias_init: Callable = default_bias_init,
        promote_dtype: Callable = dtypes.promote_dtype, impl: ImplLike = "auto",
        data_format: str = "channels_last",
        rngs: nnx.Rngs,
    ):
        size = layer_args.kernel_size_tuple(kernel_size, "SeparableConv")
        middle = in_features * _checks.positive_int("depth_multiplier", depth_multiplier)
        depthwise_shape = (*size, 1, middle)
        conv_args = dict(strides=strides, padding=padding, padding_mode=padding_mode,
                         kernel_dilation=kernel_dilation, precision=precision)
        _validate("depthwise_conv", depthwise_shape, in_features, impl, **conv_args)
        no_metadata: Mapping[str, Any] = {}
        self.depthwise_kernel = _param(depthwise_init, rngs, depthwise_shape, param_dtype,
                                       no_metadata)
        self.pointwise_kernel = _param(pointwise_init, rngs, (middle, out_features), param_dtype,
                                       no_metadata)
        self.bias = _bias(bias_init, rngs, out_features, param_dtype, no_metadata, use_bias)
        self.in_features, self.out_features = in_features, out_features
        self.kernel_size = layer_args.frozen(kernel_size)
        self.depth_multiplier, self.use_bias = depth_multiplier, use_bias
        self.dtype, self.param_dtype, self.promote_dtype, self.impl = \
            dtype, param_dtype, promote_dtype, impl
        self.data_format = layer_args.data_format(data_format, "SeparableConv")
        _store(self, conv_args)

    @layer_args.channels_first_aware
    def __call__(self, inputs: Array) -> Array:
        layer_args.check_input_rank(inputs, self.kernel_size, "SeparableConv")
        layer_args.check_in_features(inputs, self.in_features, "SeparableConv")
        bias = self.bias[...] if self.bias is not None else None
        inputs, dk, pk, bias = self.promote_dtype(
            (inputs, self.depthwise_kernel[...], self.pointwise_kernel[...], bias),
            dtype=self.dtype)
        return functional.separable_conv(inputs, dk, pk, bias, impl=self.impl, **op_args(self))


class ConvTranspose(nnx.Module):
    """Transposed convolution layer (`jaxconv.functional.conv_transpose` semantics).

    **Differs from ``flax.nnx.ConvTranspose``**: the kernel is the forward conv's,
    ``(*kernel_size, out_features // feature_group_count, in_features)``, and integer padding
    has PyTorch's meaning; `jaxconv.functional.transpose` shows the conversion.

    >>> ConvTranspose(16, 8, (3, 3), strides=2, rngs=nnx.Rngs(0))(jnp.ones((1, 7, 7, 16))).shape
    (1, 14, 14, 8)

    Args:
      in_features, out_features: channels in and out.
      kernel_size: one int per spatial dim.
      strides: stride (the upsampling factor), or one per spatial dim.
      padding, output_padding, kernel_dilation, feature_group_count: as in
        `jaxconv.functional.conv_transpose` (integer padding means what it means in PyTorch).
      preferred_element_type: as in `jaxconv.functional.conv_transpose`.
      use_bias: whether the layer has a bias.
      mask: a 0/1 array of the kernel's shape multiplied into the kernel (Flax's ``mask``).
      dtype: compute dtype (``None``: the inputs' and parameters' promoted dtype).
      param_dtype: dtype of the parameters.
      precision: ``lax.Precision`` of the conv.
      kernel_init, bias_init: initialisers, as in Flax.
      promote_dtype: how inputs and parameters are brought to one dtype, as in Flax.
      impl: formulation (`jaxconv.functional.plan`).
      data_format: ``"channels_last"`` or ``"channels_first"`` (two transposes).
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      kernel_metadata, bias_metadata: metadata of the ``nnx.Param``s, as in Flax.
    """

    op_args = ("strides", "padding", "output_padding", "kernel_dilation",
               "feature_group_count", "precision", "preferred_element_type")

    def __init__(
        self, in_features: int, out_features: int, kernel_size: int | Sequence[int],
        strides: IntOrSeq | None = 1, *, padding: PaddingLike = "SAME",
        output_padding: IntOrSeq | None = None, kernel_dilation: IntOrSeq | None = 1,
        feature_group_count: int = 1, use_bias: bool = True, mask: Array | None = None,
        dtype: Any = None, param_dtype: Any = jnp.float32, precision: Any = None,
        kernel_init: Callable = default_kernel_init, bias_init: Callable = default_bias_init,
        promote_dtype: Callable = dtypes.promote_dtype, preferred_element_type: Any = None,
        impl: str = "auto", data_format: str = "channels_last", rngs: nnx.Rngs,
        kernel_metadata: Mapping[str, Any] = MappingProxyType({}),
        bias_metadata: Mapping[str, Any] = MappingProxyType({}),
    ):
        size = layer_args.kernel_size_tuple(kernel_size, "ConvTranspose")
        groups = _checks.positive_int("feature_group_count", feature_group_count)
        kernel_shape = layer_args.kernel_shape("ConvTranspose", size, in_features,
                                               out_features, groups)
        conv_args = dict(strides=strides, padding=padding, output_padding=output_padding,
                         kernel_dilation=kernel_dilation, feature_group_count=groups,
                         precision=precision, preferred_element_type=preferred_element_type)
        _validate("conv_transpose", kernel_shape, in_features, impl, **conv_args)
        layer_args.check_mask(mask, kernel_shape, "ConvTranspose")
        self.kernel = _param(kernel_init, rngs, kernel_shape, param_dtype, kernel_metadata)
        self.bias = _bias(bias_init, rngs, out_features, param_dtype, bias_metadata, use_bias)
        self.in_features, self.out_features = in_features, out_features
        self.kernel_size = layer_args.frozen(kernel_size)
        self.mask, self.use_bias, self.dtype, self.param_dtype = mask, use_bias, dtype, \
            param_dtype
        self.promote_dtype, self.impl = promote_dtype, impl
        self.data_format = layer_args.data_format(data_format, "ConvTranspose")
        _store(self, conv_args)

    @layer_args.channels_first_aware
    def __call__(self, inputs: Array) -> Array:
        return _apply(self, functional.conv_transpose, inputs, "ConvTranspose")
