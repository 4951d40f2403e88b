"""PyTorch as a second, independent oracle (skipped where PyTorch is not installed)."""

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import functional as F

torch = pytest.importorskip("torch")


def _to_torch_input(x):
    return torch.from_numpy(np.moveaxis(x, -1, 1).copy())


def _from_torch_output(y):
    return np.moveaxis(y.detach().numpy(), 1, -1)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_padding_modes_match_torch(rank, mode):
    r = np.random.default_rng(rank)
    x = r.standard_normal((2, *(6,) * rank, 4)).astype(np.float32)
    layer = getattr(torch.nn, f"Conv{rank}d")(4, 6, 3, stride=2, padding=2, dilation=2,
                                              groups=2, padding_mode=mode)
    # torch weight (O, I/g, *k) -> HWIO (*k, I/g, O)
    kernel = np.moveaxis(layer.weight.detach().numpy(), (0, 1), (-1, -2))
    y = F.conv(jnp.asarray(x), jnp.asarray(kernel), jnp.asarray(layer.bias.detach().numpy()),
               strides=2, padding=2, padding_mode=mode, kernel_dilation=2, feature_group_count=2)
    chex.assert_trees_all_close(np.asarray(y), _from_torch_output(layer(_to_torch_input(x))),
                                atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("stride", "padding", "output_padding", "dilation", "groups"), [
    (2, 0, 0, 1, 1), (2, 1, 1, 1, 1), (3, 2, 2, 1, 2), (2, 1, 0, 2, 1), (1, 0, 1, 2, 2),
])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_transpose_matches_torch(rank, stride, padding, output_padding, dilation, groups):
    r = np.random.default_rng(stride + padding)
    x = r.standard_normal((2, *(4,) * rank, 4)).astype(np.float32)
    layer = getattr(torch.nn, f"ConvTranspose{rank}d")(
        4, 6, 3, stride=stride, padding=padding, output_padding=output_padding,
        dilation=dilation, groups=groups)
    # torch weight (C_in, C_out/g, *k) -> ours (*k, C_out/g, C_in): w.permute(2, 3, 1, 0) in 2-D
    kernel = np.moveaxis(layer.weight.detach().numpy(), (0, 1), (-1, -2))
    y = F.conv_transpose(jnp.asarray(x), jnp.asarray(kernel),
                         jnp.asarray(layer.bias.detach().numpy()), strides=stride,
                         padding=padding, output_padding=output_padding, kernel_dilation=dilation,
                         feature_group_count=groups)
    chex.assert_trees_all_close(np.asarray(y), _from_torch_output(layer(_to_torch_input(x))),
                                atol=1e-5, rtol=1e-5)


def _per_dim(rank, value):
    return tuple(value) if isinstance(value, tuple) else (value,) * rank


@pytest.mark.parametrize(("rank", "kernel", "stride", "padding", "dilation"), [
    (1, 3, 2, 1, 1), (2, 3, 2, 1, 2), (2, (2, 3), 1, (1, 1), 1), (3, 2, 2, 0, 1), (3, 3, 1, 1, 2),
])
def test_max_pool_matches_torch(rank, kernel, stride, padding, dilation):
    x = np.random.default_rng(rank).standard_normal((2, *(9, 8, 7)[:rank], 3)).astype(np.float32)
    want = getattr(torch.nn.functional, f"max_pool{rank}d")(
        _to_torch_input(x), kernel, stride, padding, dilation)
    y = F.max_pool(jnp.asarray(x), _per_dim(rank, kernel), _per_dim(rank, stride),
                   _per_dim(rank, padding),
                   window_dilation=_per_dim(rank, dilation))
    chex.assert_trees_all_close(np.asarray(y), _from_torch_output(want))


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize(("rank", "kernel", "stride", "padding"), [
    (1, 3, 2, 1), (2, 3, 2, 1), (2, (2, 3), 1, (1, 1)), (3, 3, 2, 1),
])
def test_avg_pool_matches_torch(rank, kernel, stride, padding, count_include_pad):
    x = np.random.default_rng(rank).standard_normal((2, *(9, 8, 7)[:rank], 3)).astype(np.float32)
    want = getattr(torch.nn.functional, f"avg_pool{rank}d")(
        _to_torch_input(x), kernel, stride, padding, count_include_pad=count_include_pad)
    y = F.avg_pool(jnp.asarray(x), _per_dim(rank, kernel), _per_dim(rank, stride),
                   _per_dim(rank, padding),
                   count_include_pad=count_include_pad)
    chex.assert_trees_all_close(np.asarray(y), _from_torch_output(want), atol=1e-6, rtol=1e-6)
