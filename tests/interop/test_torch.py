"""PyTorch weights in: outputs equal PyTorch's after `jaxconv.interop.torch.load`."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxconv.nnx as jn
from jaxconv.interop import torch as interop

torch = pytest.importorskip("torch")
tnn = torch.nn


def _first(x):
    """Channels-last NumPy -> PyTorch's channels-first tensor."""
    return torch.from_numpy(np.moveaxis(x, -1, 1).copy())


def _last(y):
    return np.moveaxis(y.detach().numpy(), 1, -1)


def _input(rank, channels, seed=0, size=9):
    r = np.random.default_rng(seed)
    return r.standard_normal((2, *(size,) * rank, channels)).astype(np.float32)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize(("stride", "dilation", "groups", "bias"), [
    (1, 1, 1, True), (2, 2, 2, False), (1, 1, 6, True)])
def test_conv(rank, stride, dilation, groups, bias):
    torch.manual_seed(rank)
    source = getattr(tnn, f"Conv{rank}d")(6, 12, 3, stride=stride, padding=1, dilation=dilation,
                                          groups=groups, bias=bias)
    target = jn.Conv(6, 12, (3,) * rank, strides=stride, padding=1, kernel_dilation=dilation,
                     feature_group_count=groups, use_bias=bias, rngs=nnx.Rngs(0))
    assert interop.load(target, source) is target
    x = _input(rank, 6)
    chex.assert_trees_all_close(np.asarray(target(jnp.asarray(x))), _last(source(_first(x))),
                                atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize(("stride", "padding", "output_padding", "dilation", "groups"), [
    (2, 1, 1, 1, 1), (3, 0, 2, 1, 2), (2, 1, 0, 2, 1)])
def test_conv_transpose(rank, stride, padding, output_padding, dilation, groups):
    torch.manual_seed(rank)
    source = getattr(tnn, f"ConvTranspose{rank}d")(
        4, 6, 3, stride=stride, padding=padding, output_padding=output_padding,
        dilation=dilation, groups=groups)
    target = jn.ConvTranspose(4, 6, (3,) * rank, strides=stride, padding=padding,
                              output_padding=output_padding, kernel_dilation=dilation,
                              feature_group_count=groups, rngs=nnx.Rngs(0))
    interop.load(target, source)
    x = _input(rank, 4, size=5)
    chex.assert_trees_all_close(np.asarray(target(jnp.asarray(x))), _last(source(_first(x))),
                                atol=1e-5, rtol=1e-5)


def test_batchnorm_linear_layernorm_and_flax_layers():
    torch.manual_seed(0)
    bn = tnn.BatchNorm2d(5)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    bn.eval()
    target = nnx.BatchNorm(5, use_running_average=True, rngs=nnx.Rngs(0))
    x = _input(2, 5)
    chex.assert_trees_all_close(np.asarray(interop.load(target, bn)(jnp.asarray(x))),
                                _last(bn(_first(x))), atol=1e-5, rtol=1e-5)
    linear = tnn.Linear(5, 3)
    dense = interop.load(nnx.Linear(5, 3, rngs=nnx.Rngs(0)), linear)
    v = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    chex.assert_trees_all_close(np.asarray(dense(jnp.asarray(v))),
                                linear(torch.from_numpy(v)).detach().numpy(), atol=1e-6)
    norm = tnn.LayerNorm(5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
    flax_norm = interop.load(nnx.LayerNorm(5, epsilon=1e-5, rngs=nnx.Rngs(0)), norm)
    chex.assert_trees_all_close(np.asarray(flax_norm(jnp.asarray(v))),
                                norm(torch.from_numpy(v)).detach().numpy(), atol=1e-5)
    conv = tnn.Conv2d(5, 4, 3, padding=1)
    flax_conv = interop.load(nnx.Conv(5, 4, (3, 3), padding=1, rngs=nnx.Rngs(0)), conv)
    chex.assert_trees_all_close(np.asarray(flax_conv(jnp.asarray(x))), _last(conv(_first(x))),
                                atol=1e-5, rtol=1e-5)


class TorchNet(tnn.Module):
    def __init__(self):
        super().__init__()
        self.stem = tnn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn = tnn.BatchNorm2d(8)
        self.depthwise = tnn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.pointwise = tnn.Conv2d(8, 16, 1)
        self.squeeze = tnn.Conv2d(16, 4, 1, bias=False)
        self.up = tnn.ConvTranspose2d(4, 4, 2, stride=2)
        self.head = tnn.Linear(4, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = self.squeeze(torch.relu(self.pointwise(self.depthwise(x))))
        return self.head(self.up(x).mean(dim=(2, 3)))


class JaxNet(nnx.Module):
    def __init__(self, rngs):
        self.stem = jn.Conv(3, 8, (3, 3), strides=2, padding=1, use_bias=False, rngs=rngs)
        self.bn = nnx.BatchNorm(8, use_running_average=True, rngs=rngs)
        self.separable = jn.SeparableConv(8, 16, (3, 3), padding=1, rngs=rngs)
        self.squeeze = jn.Pointwise(16, 4, use_bias=False, rngs=rngs)
        self.up = jn.ConvTranspose(4, 4, (2, 2), strides=2, padding=0, rngs=rngs)
        self.head = nnx.Linear(4, 10, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.bn(self.stem(x)))
        x = self.squeeze(nnx.relu(self.separable(x)))
        return self.head(self.up(x).mean(axis=(1, 2)))


def test_a_whole_net_pairs_modules_in_definition_order():
    torch.manual_seed(0)
    source = TorchNet()
    with torch.no_grad():
        source.bn.running_mean.uniform_(-1, 1)
        source.bn.running_var.uniform_(0.5, 2)
    source.eval()
    target = interop.load(JaxNet(nnx.Rngs(0)), source)
    x = _input(2, 3, size=16)
    chex.assert_trees_all_close(np.asarray(target(jnp.asarray(x))),
                                source(_first(x)).detach().numpy(), atol=1e-5, rtol=1e-5)


def test_mismatches_name_both_paths_and_copy_nothing():
    target = JaxNet(nnx.Rngs(0))
    before = np.asarray(target.stem.kernel[...]).copy()
    source = TorchNet()
    source.pointwise = tnn.Conv2d(8, 32, 1)
    with pytest.raises(ValueError, match=r"separable: pointwise_kernel has shape \(8, 16\) but "
                                         r"pointwise \(Conv2d\) gives \(8, 32\)"):
        interop.load(target, source)
    np.testing.assert_array_equal(np.asarray(target.stem.kernel[...]), before)
    source = TorchNet()
    source.head = tnn.Conv1d(4, 10, 1)
    with pytest.raises(ValueError, match=r"head \(Linear, linear\) cannot take the weights of "
                                         r"head \(Conv1d\)"):
        interop.load(target, source)
    with pytest.raises(ValueError, match=r"Conv has bias but Conv2d \(Conv2d\) has none"):
        interop.load(jn.Conv(3, 8, (3, 3), rngs=nnx.Rngs(0)), TorchNet().stem)
    with pytest.raises(ValueError, match=r"modules with weights the target lacks: 1 \(Linear\)"):
        interop.load(nnx.List([JaxNet(nnx.Rngs(0)).stem]), tnn.Sequential(
            tnn.Conv2d(3, 8, 3, bias=False), tnn.Linear(2, 2)))
    with pytest.raises(ValueError, match=r"flax\.nnx\.ConvTranspose"):
        interop.load(nnx.ConvTranspose(4, 4, (2, 2), rngs=nnx.Rngs(0)),
                     tnn.ConvTranspose2d(4, 4, 2))
    with pytest.raises(ValueError, match="PReLU"):
        interop.load(target, tnn.Sequential(tnn.PReLU()))


def test_groups_and_channels_that_the_kernel_shape_hides_are_refused():
    with pytest.raises(ValueError, match=r"Conv has 1 group.* but Conv2d .* has groups=2"):
        interop.load(jn.Conv(4, 16, (3, 3), rngs=nnx.Rngs(0)), tnn.Conv2d(8, 16, 3, groups=2))
    with pytest.raises(ValueError, match=r"DepthwiseConv has 8 group.* but .* groups=1"):
        interop.load(jn.DepthwiseConv(8, (3, 3), use_bias=False, rngs=nnx.Rngs(0)),
                     tnn.Conv2d(1, 8, 3, bias=False))


class TorchConvNeXt(tnn.Module):
    """A ConvNeXt block as PyTorch code writes it: its layer scale is the block's own
    parameter, shaped ``(C, 1, 1)`` to broadcast over channels-first images."""

    def __init__(self, c):
        super().__init__()
        self.depthwise = tnn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = tnn.LayerNorm(c, eps=1e-6)
        self.expand = tnn.Conv2d(c, 4 * c, 1)
        self.project = tnn.Conv2d(4 * c, c, 1)
        self.gamma = tnn.Parameter(torch.rand(c, 1, 1) + 0.5)

    def forward(self, x):
        y = self.norm(self.depthwise(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return x + self.gamma * self.project(tnn.functional.gelu(self.expand(y)))


def test_a_modules_own_parameter_loads_beside_its_layers():
    from jaxconv.blocks.branches import ConvNeXtBlock

    torch.manual_seed(0)
    source = TorchConvNeXt(8)
    target = interop.load(ConvNeXtBlock(8, 8, rngs=nnx.Rngs(0)), source)
    np.testing.assert_array_equal(np.asarray(target.gamma[...]),
                                  source.gamma.detach().numpy().reshape(8))
    x = _input(2, 8)
    chex.assert_trees_all_close(np.asarray(target(jnp.asarray(x))), _last(source(_first(x))),
                                atol=1e-5, rtol=1e-5)


class TorchScaled(tnn.Module):
    def __init__(self, scale_shape=(4,)):
        super().__init__()
        self.conv = tnn.Conv2d(3, 4, 3, padding=1)
        if scale_shape is not None:
            self.scale = tnn.Parameter(torch.ones(scale_shape))


class JaxScaled(nnx.Module):
    def __init__(self, scale_shape=(4,)):
        self.conv = jn.Conv(3, 4, (3, 3), padding=1, rngs=nnx.Rngs(0))
        if scale_shape is not None:
            self.scale = nnx.Param(jnp.zeros(scale_shape))


def test_a_parameter_on_either_side_without_a_partner_is_refused_by_name():
    with pytest.raises(ValueError, match=r"source parameter scale \(shape \(4,\)\) has no "
                                         r"partner in the target"):
        interop.load(JaxScaled(None), TorchScaled())
    target = JaxScaled()
    before = np.asarray(target.conv.kernel[...]).copy()
    with pytest.raises(ValueError, match=r"target parameter scale \(shape \(4,\)\) has no "
                                         r"partner in the source"):
        interop.load(target, TorchScaled(None))
    np.testing.assert_array_equal(np.asarray(target.conv.kernel[...]), before)
    with pytest.raises(ValueError, match=r"target parameter scale has shape \(2, 2\) but "
                                         r"source parameter scale has \(4,\)"):
        interop.load(JaxScaled((2, 2)), TorchScaled())
    with pytest.raises(ValueError, match=r"target parameter scale has shape \(4, 3\) but "
                                         r"source parameter scale has \(3, 4\)"):
        interop.load(JaxScaled((4, 3)), TorchScaled((3, 4)))
    loaded = interop.load(JaxScaled((1, 1, 4)), TorchScaled((4, 1, 1)))
    np.testing.assert_array_equal(np.asarray(loaded.scale[...]), np.ones((1, 1, 4)))


class GainConv(jn.Conv):
    """A recognised layer holding one more parameter than load converts."""

    def __init__(self):
        super().__init__(3, 4, (3, 3), rngs=nnx.Rngs(0))
        self.gain = nnx.Param(jnp.ones((4,)))


def test_a_parameter_inside_a_layer_that_load_does_not_convert_is_refused():
    with pytest.raises(ValueError, match=r"target parameter gain \(shape \(4,\)\) sits inside a "
                                         r"layer beside the parameters load converts"):
        interop.load(GainConv(), tnn.Conv2d(3, 4, 3))
