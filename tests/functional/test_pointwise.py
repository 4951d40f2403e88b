"""The 1x1 conv is a matmul over channels: values and gradients, strided too."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import functional as F


def _data(rank, seed=0, groups=1):
    r = np.random.default_rng(seed)
    x = jnp.asarray(r.standard_normal((2, *(7,) * rank, 6)), jnp.float32)
    k = jnp.asarray(r.standard_normal((*(1,) * rank, 6 // groups, 4 * groups)), jnp.float32)
    b = jnp.asarray(r.standard_normal((4 * groups,)), jnp.float32)
    return x, k, b


@pytest.mark.parametrize("cout", [2, 6, 11], ids=["narrowing", "square", "widening"])
def test_matmul_kernel_gradient_for_narrowing_and_widening_convs(cout):
    # the hand-written kernel gradient transposes whichever operand has fewer channels
    r = np.random.default_rng(cout)
    x = jnp.asarray(r.standard_normal((3, 5, 4, 6)), jnp.float32)
    k = jnp.asarray(r.standard_normal((1, 1, 6, cout)), jnp.float32)

    def loss(impl):
        return lambda x, k: jnp.sum(jnp.sin(F.conv(x, k, impl=impl)))

    chex.assert_trees_all_close(jax.grad(loss("matmul"), argnums=(0, 1))(x, k),
                                jax.grad(loss("xla"), argnums=(0, 1))(x, k),
                                atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("groups", [1, 3])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_matmul_equals_xla_values_and_gradients(rank, stride, groups):
    x, k, b = _data(rank, groups=groups)
    kw = dict(strides=stride, feature_group_count=groups)

    def loss(impl):
        return lambda x, k, b: jnp.sum(F.conv(x, k, b, impl=impl, **kw) ** 2)

    chex.assert_trees_all_close(F.conv(x, k, b, impl="matmul", **kw),
                                F.conv(x, k, b, impl="xla", **kw), atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(jax.grad(loss("matmul"), argnums=(0, 1, 2))(x, k, b),
                                jax.grad(loss("xla"), argnums=(0, 1, 2))(x, k, b),
                                atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("padding", ["SAME", 1, ((0, 2), (1, 0))])
def test_matmul_with_padding_and_dilated_kernel(padding):
    x, k, b = _data(2, seed=1)
    kwargs = dict(strides=2, padding=padding, kernel_dilation=3)
    chex.assert_trees_all_close(F.conv(x, k, b, impl="matmul", **kwargs),
                                F.conv(x, k, b, impl="xla", **kwargs), atol=1e-5, rtol=1e-5)


def test_pointwise_takes_a_dense_kernel_or_a_1x1_kernel():
    x, k, b = _data(2, seed=2)
    dense = k.reshape(6, 4)
    expected = F.conv(x, k, b, strides=2, impl="xla")
    for kernel, strides in ((dense, (2, 2)), (k, 2), (k, (2, 2))):
        for impl in ("matmul", "xla", "auto"):
            chex.assert_trees_all_close(F.pointwise(x, kernel, b, strides=strides, impl=impl),
                                        expected, atol=1e-5, rtol=1e-5)


def test_pointwise_is_dense_at_every_pixel():
    x, k, b = _data(2, seed=3)
    y = F.pointwise(x, k.reshape(6, 4), b)
    expected = np.einsum("nhwc,co->nhwo", np.asarray(x, np.float64),
                         np.asarray(k, np.float64).reshape(6, 4)) + np.asarray(b)
    chex.assert_trees_all_close(np.asarray(y, np.float64), expected, atol=1e-5, rtol=1e-5)


def test_auto_picks_matmul_for_1x1_only():
    assert F.plan((2, 8, 8, 6), (1, 1, 6, 4)).impl == "matmul"
    assert F.plan((2, 8, 8, 6), (1, 1, 6, 4), strides=2).impl == "matmul"
    assert F.plan((2, 8, 8, 6), (1, 1, 3, 4), feature_group_count=2).impl == "matmul"
    assert F.plan((2, 8, 8, 6), (1, 1, 3, 4), feature_group_count=2).shape_class == \
        "grouped_pointwise"
    assert F.plan((2, 8, 8, 6), (1, 1, 6, 4), input_dilation=2).impl == "xla"
    assert F.plan((2, 8, 8, 6), (3, 3, 6, 4)).impl in ("canonical", "row_taps")
    assert F.plan((2, 8, 8, 6), (3, 3, 1, 6), op="depthwise_conv").shape_class == "depthwise"
    text = str(F.plan((2, 8, 8, 6), (3, 3, 6, 4)))
    assert "matmul: the kernel is (3, 3), not 1x..x1" in text


def test_grouped_pointwise_matches_the_reference():
    from tests import reference as ref

    x, k, b = _data(2, seed=4, groups=3)
    y = F.pointwise(x, k.reshape(2, 12), b, strides=(2, 1), feature_group_count=3)
    expected = ref.conv(np.asarray(x), np.asarray(k), strides=(2, 1), padding="VALID",
                        groups=3) + np.asarray(b)
    chex.assert_trees_all_close(np.asarray(y, np.float64), expected, atol=1e-5, rtol=1e-5)
