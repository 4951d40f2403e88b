"""Flax Linen convolution layers: the NNX layers' twins for Linen code.

`Conv` has ``flax.linen.Conv``'s fields (names, defaults, parameter names and shapes), plus
``padding_mode``, ``impl`` and Keras's ``data_format``. Input channels are inferred from the
input, as in Linen. Every layer calls the same `jaxconv.functional` op as its NNX twin: no conv
arithmetic lives here. Every layer also has a ``compilation`` field, the op's argument of that
name (`jaxconv.functional.Compilation`: the compiler options and batch shards of the program the
layer is traced into), which `jaxconv.nnx.set_compilation` sets on NNX layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
from flax import linen as nn
from flax.linen import dtypes, initializers

from jaxconv import functional
from jaxconv.nnx import layer_args
from jaxconv.typing import Array, ImplLike, IntOrSeq, PaddingLike

default_kernel_init = initializers.lecun_normal()
default_bias_init = initializers.zeros_init()


def _kernel_size(module: nn.Module, inputs: Array, layer: str) -> tuple[int, ...]:
    """The module's kernel size as a tuple, once the input's rank is checked against it."""
    size = layer_args.kernel_size_tuple(module.kernel_size, layer)
    layer_args.check_input_rank(inputs, module.kernel_size, layer)
    return size


def _bias(module: nn.Module, features: int) -> Array | None:
    """The ``(features,)`` bias parameter, or None without ``use_bias``."""
    return (module.param("bias", module.bias_init, (features,), module.param_dtype)
            if module.use_bias else None)


def _operands(module: nn.Module, inputs: Array, kernel_shape: tuple[int, ...], features: int,
              layer: str) -> tuple[Array, Array, Array | None]:
    """The (masked) kernel and the bias of a layer with one kernel, and the operands promoted
    like Flax's."""
    layer_args.check_mask(module.mask, kernel_shape, layer)
    kernel = module.param("kernel", module.kernel_init, kernel_shape, module.param_dtype)
    if module.mask is not None:
        kernel = kernel * module.mask
    return module.promote_dtype(inputs, kernel, _bias(module, features), dtype=module.dtype)


class Conv(nn.Module):
    """N-D convolution, a drop-in for ``flax.linen.Conv`` (see `jaxconv.nnx.Conv`).

    >>> import jax
    >>> layer = Conv(32, (3, 3))
    >>> params = layer.init(jax.random.key(0), jnp.ones((1, 64, 64, 3)))
    >>> params["params"]["kernel"].shape
    (3, 3, 3, 32)

    Attributes:
      features: output channels (input channels come from the input, as in Flax).
      kernel_size: one int per spatial dim (an int means 1-D, as in Flax).
      strides, padding, input_dilation, kernel_dilation, feature_group_count: as in
        `jaxconv.functional.conv`.
      padding_mode: ``"zeros"``, ``"circular"``, ``"reflect"`` or ``"replicate"``.
      mask: a 0/1 array of the kernel's shape multiplied into the kernel.
      kernel_init, bias_init: initialisers, as in Flax.
      conv_general_dilated, conv_general_dilated_cls: Flax's hooks: a replacement for
        ``lax.conv_general_dilated`` (used as the formulation).
      use_bias: whether the layer has a bias.
      dtype: compute dtype (``None``: the promoted dtype of inputs and parameters).
      param_dtype: dtype of the parameters.
      precision: ``lax.Precision`` of the conv.
      promote_dtype: how inputs and parameters are brought to one dtype, as in Flax.
      impl: formulation (`jaxconv.functional.plan`).
      data_format: ``"channels_last"`` or ``"channels_first"`` (two transposes).
      compilation: the `jaxconv.functional.Compilation` the op is compiled with.
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: IntOrSeq | None = 1
    padding: PaddingLike = "SAME"
    input_dilation: IntOrSeq | None = 1
    kernel_dilation: IntOrSeq | None = 1
    feature_group_count: int = 1
    use_bias: bool = True
    mask: Array | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    promote_dtype: Callable = dtypes.promote_dtype
    conv_general_dilated: Callable | None = None
    conv_general_dilated_cls: Any = None
    padding_mode: str = "zeros"
    impl: ImplLike = "auto"
    data_format: str = "channels_last"
    compilation: functional.Compilation | None = None

    @nn.compact
    @layer_args.channels_first_aware
    def __call__(self, inputs: Array) -> Array:
        size = _kernel_size(self, inputs, "Conv")
        kernel_shape = layer_args.kernel_shape("Conv", size, inputs.shape[-1], self.features,
                                               self.feature_group_count)
        inputs, kernel, bias = _operands(self, inputs, kernel_shape, self.features, "Conv")
        impl = self.impl
        if self.conv_general_dilated_cls is not None:
            impl = self.conv_general_dilated_cls()
        elif self.conv_general_dilated is not None:
            impl = self.conv_general_dilated
        return functional.conv(inputs, kernel, bias, strides=self.strides, padding=self.padding,
                               padding_mode=self.padding_mode, input_dilation=self.input_dilation,
                               kernel_dilation=self.kernel_dilation,
                               feature_group_count=self.feature_group_count,
                               precision=self.precision, impl=impl,
                               compilation=self.compilation)


class Pointwise(nn.Module):
    """1x1 convolution with a ``(C_in, C_out)`` kernel (see `jaxconv.nnx.Pointwise`).

    Attributes:
      features: output channels.
      strides: 1, or one stride per spatial dim.
      feature_group_count: groups (ShuffleNet's grouped 1x1).
      kernel_init, bias_init: initialisers, as in Flax.
      use_bias: whether the layer has a bias.
      dtype: compute dtype (``None``: the promoted dtype of inputs and parameters).
      param_dtype: dtype of the parameters.
      precision: ``lax.Precision`` of the conv.
      promote_dtype: how inputs and parameters are brought to one dtype, as in Flax.
      impl: formulation (`jaxconv.functional.plan`).
      data_format: ``"channels_last"`` or ``"channels_first"`` (two transposes).
      compilation: the `jaxconv.functional.Compilation` the op is compiled with.
    """

    features: int
    strides: IntOrSeq | None = 1
    feature_group_count: int = 1
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    promote_dtype: Callable = dtypes.promote_dtype
    impl: ImplLike = "auto"
    data_format: str = "channels_last"
    compilation: functional.Compilation | None = None

    @nn.compact
    @layer_args.channels_first_aware
    def __call__(self, inputs: Array) -> Array:
        strides = layer_args.strides_for_pointwise(self.strides, "Pointwise")
        kernel = self.param("kernel", self.kernel_init,
                            layer_args.kernel_shape("Pointwise", (), inputs.shape[-1],
                                                    self.features, self.feature_group_count),
                            self.param_dtype)
        bias = _bias(self, self.features)
        inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        return functional.pointwise(inputs, kernel, bias, strides=strides,
                                    feature_group_count=self.feature_group_count,
                                    precision=self.precision, impl=self.impl,
                                    compilation=self.compilation)


class DepthwiseConv(nn.Module):
    """Depthwise convolution (see `jaxconv.nnx.DepthwiseConv`).

    Attributes:
      kernel_size: one int per spatial dim.
      strides: stride, or one per spatial dim.
      depth_multiplier: filters per input channel.
      padding, padding_mode, kernel_dilation: as in `jaxconv.functional.conv`.
      mask: a 0/1 array of the kernel's shape multiplied into the kernel.
      kernel_init, bias_init: initialisers, as in Flax.
      use_bias: whether the layer has a bias.
      dtype: compute dtype (``None``: the promoted dtype of inputs and parameters).
      param_dtype: dtype of the parameters.
      precision: ``lax.Precision`` of the conv.
      promote_dtype: how inputs and parameters are brought to one dtype, as in Flax.
      impl: formulation (`jaxconv.functional.plan`).
      data_format: ``"channels_last"`` or ``"channels_first"`` (two transposes).
      compilation: the `jaxconv.functional.Compilation` the op is compiled with.
    """

    kernel_size: int | Sequence[int]
    strides: IntOrSeq | None = 1
    depth_multiplier: int = 1
    padding: PaddingLike = "SAME"
    padding_mode: str = "zeros"
    kernel_dilation: IntOrSeq | None = 1
    use_bias: bool = True
    mask: Array | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    promote_dtype: Callable = dtypes.promote_dtype
    impl: ImplLike = "auto"
    data_format: str = "channels_last"
    compilation: functional.Compilation | None = None

    @nn.compact
    @layer_args.channels_first_aware
    def __call__(self, inputs: Array) -> Array:
        size = _kernel_size(self, inputs, "DepthwiseConv")
        out_features = inputs.shape[-1] * self.depth_multiplier
        kernel_shape = layer_args.kernel_shape("DepthwiseConv", size, inputs.shape[-1],
                                               out_features)
        inputs, kernel, bias = _operands(self, inputs, kernel_shape, out_features,
                                         "DepthwiseConv")
        return functional.depthwise_conv(inputs, kernel, bias, strides=self.strides,
                                         padding=self.padding, padding_mode=self.padding_mode,
                                         kernel_dilation=self.kernel_dilation,
                                         depth_multiplier=self.depth_multiplier,
                                         precision=self.precision, impl=self.impl,
                                         compilation=self.compilation)


class SeparableConv(nn.Module):
    """Depthwise then 1x1 convolution (see `jaxconv.nnx.SeparableConv`).

    Attributes:
      features: output channels.
      kernel_size: one int per spatial dim, of the depthwise conv.
      strides: stride of the depthwise conv.
      depth_multiplier: depthwise filters per input channel.
      padding, padding_mode, kernel_dilation: as in `jaxconv.functional.conv`.
      depthwise_init, pointwise_init, bias_init: initialisers of the two kernels and the bias.
      use_bias: whether the layer has a bias.
      dtype: compute dtype (``None``: the promoted dtype of inputs and parameters).
      param_dtype: dtype of the parameters.
      precision: ``lax.Precision`` of the conv.
      promote_dtype: how inputs and parameters are brought to one dtype, as in Flax.
      impl: formulation (`jaxconv.functional.plan`).
      data_format: ``"channels_last"`` or ``"channels_first"`` (two transposes).
      compilation: the `jaxconv.functional.Compilation` the op is compiled with.
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: IntOrSeq | None = 1
    depth_multiplier: int = 1
    padding: PaddingLike = "SAME"
    padding_mode: str = "zeros"
    kernel_dilation: IntOrSeq | None = 1
    use_bias: bool = True
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    depthwise_init: Callable = default_kernel_init
    pointwise_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    promote_dtype: Callable = dtypes.promote_dtype
    impl: ImplLike = "auto"
    data_format: str = "channels_last"
    compilation: functional.Compilation | None = None

    @nn.compact
    @layer_args.channels_first_aware
    def __call__(self, inputs: Array) -> Array:
        size = _kernel_size(self, inputs, "SeparableConv")
        middle = inputs.shape[-1] * self.depth_multiplier
        dk = self.param("depthwise_kernel", self.depthwise_init, (*size, 1, middle),
                        self.param_dtype)
        pk = self.param("pointwise_kernel", self.pointwise_init, (middle, self.features),
                        self.param_dtype)
        bias = _bias(self, self.features)
        inputs, dk, pk, bias = self.promote_dtype(inputs, dk, pk, bias, dtype=self.dtype)
        return functional.separable_conv(inputs, dk, pk, bias, strides=self.strides,
                                         padding=self.padding, padding_mode=self.padding_mode,
                                         kernel_dilation=self.kernel_dilation,
                                         precision=self.precision, impl=self.impl,
                                         compilation=self.compilation)


class ConvTranspose(nn.Module):
    """Transposed convolution with the forward conv's kernel layout and PyTorch's padding
    (see `jaxconv.functional.transpose`; **differs from ``flax.linen.ConvTranspose``**).

    Attributes:
      features: output channels.
      kernel_size: one int per spatial dim.
      strides: stride (the upsampling factor), or one per spatial dim.
      padding, output_padding, kernel_dilation, feature_group_count: as in
        `jaxconv.functional.conv_transpose` (integer padding means what it means in PyTorch).
      mask: a 0/1 array of the kernel's shape multiplied into the kernel.
      kernel_init, bias_init: initialisers, as in Flax.
      use_bias: whether the layer has a bias.
      dtype: compute dtype (``None``: the promoted dtype of inputs and parameters).
      param_dtype: dtype of the parameters.
      precision: ``lax.Precision`` of the conv.
      promote_dtype: how inputs and parameters are brought to one dtype, as in Flax.
      impl: formulation (`jaxconv.functional.plan`).
      data_format: ``"channels_last"`` or ``"channels_first"`` (two transposes).
      compilation: the `jaxconv.functional.Compilation` the op is compiled with.
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: IntOrSeq | None = 1
    padding: PaddingLike = "SAME"
    output_padding: IntOrSeq | None = None
    kernel_dilation: IntOrSeq | None = 1
    feature_group_count: int = 1
    use_bias: bool = True
    mask: Array | None = None
    dtype: Any = None
    param_dtype: Any = jnp.float32
    precision: Any = None
    kernel_init: Callable = default_kernel_init
    bias_init: Callable = default_bias_init
    promote_dtype: Callable = dtypes.promote_dtype
    impl: str = "auto"
    data_format: str = "channels_last"
    compilation: functional.Compilation | None = None

    @nn.compact
    @layer_args.channels_first_aware
    def __call__(self, inputs: Array) -> Array:
        size = _kernel_size(self, inputs, "ConvTranspose")
        kernel_shape = layer_args.kernel_shape("ConvTranspose", size, inputs.shape[-1],
                                               self.features, self.feature_group_count,
                                               out_name="features")
        inputs, kernel, bias = _operands(self, inputs, kernel_shape, self.features,
                                         "ConvTranspose")
        return functional.conv_transpose(inputs, kernel, bias, strides=self.strides,
                                         padding=self.padding, output_padding=self.output_padding,
                                         kernel_dilation=self.kernel_dilation,
                                         feature_group_count=self.feature_group_count,
                                         precision=self.precision, impl=self.impl,
                                         compilation=self.compilation)
