"""Pooling against the plain NumPy loop in tests/reference.py."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads

import jaxconv.linen as jl
import jaxconv.nnx as jn
from jaxconv import functional as F
from tests import reference

CASES = [  # rank, window, strides, padding, padding_mode, dilation
    (1, (3,), (2,), "SAME", "zeros", (1,)),
    (1, (2,), (1,), "CAUSAL", "zeros", (2,)),
    (2, (3, 3), (2, 2), "SAME", "zeros", (1, 1)),
    (2, (2, 3), (1, 2), ((1, 0), (1, 1)), "zeros", (1, 1)),
    (2, (3, 3), (1, 1), 1, "reflect", (1, 1)),
    (2, (3, 2), (2, 1), "VALID", "zeros", (2, 1)),
    (2, (3, 3), (1, 1), "REPLICATE", "zeros", (1, 1)),
    (3, (2, 2, 2), (2, 2, 2), "VALID", "zeros", (1, 1, 1)),
    (3, (3, 1, 2), (1, 2, 1), (1, 0, (0, 1)), "circular", (1, 1, 1)),
]


def _input(rank, seed=0, batch=2, channels=3):
    r = np.random.default_rng(seed)
    return r.standard_normal((batch, *(7, 6, 5)[:rank], channels)).astype(np.float32)


@pytest.mark.parametrize(("rank", "window", "strides", "padding", "mode", "dilation"), CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_matches_reference(kind, rank, window, strides, padding, mode, dilation):
    x = _input(rank)
    op = F.max_pool if kind == "max" else F.avg_pool
    for include in ([True] if kind == "max" else [True, False]):
        extra = {} if kind == "max" else {"count_include_pad": include}
        y = op(jnp.asarray(x), window, strides, padding, padding_mode=mode,
               window_dilation=dilation, **extra)
        want = reference.pool(x, window, kind=kind, strides=strides, padding=padding, fill=mode,
                              dilation=dilation, count_include_pad=include)
        chex.assert_trees_all_close(np.asarray(y, np.float64), want, atol=1e-6, rtol=1e-6)


def test_padded_positions_are_empty_for_max_and_counted_or_not_for_avg():
    x = -jnp.ones((1, 2, 1))
    assert F.max_pool(x, (3,), padding=1).tolist() == [[[-1.0], [-1.0]]]
    np.testing.assert_allclose(F.avg_pool(x, (3,), padding=1)[0, :, 0], [-2 / 3, -2 / 3])
    np.testing.assert_allclose(F.avg_pool(x, (3,), padding=1, count_include_pad=False)[0, :, 0],
                               [-1.0, -1.0])


def test_gradients_match_finite_differences():
    r = np.random.default_rng(3)
    x = jnp.asarray(r.permutation(2 * 6 * 5 * 3).reshape(2, 6, 5, 3) / 10.0, jnp.float32)
    check_grads(lambda a: F.max_pool(a, (3, 2), (2, 1), "SAME"), (x,), order=1, modes=("rev",),
                eps=1e-2)
    check_grads(lambda a: F.avg_pool(a, (3, 3), 2, 1, count_include_pad=False), (x,), order=1,
                modes=("fwd", "rev"), eps=1e-2)


def test_bfloat16_average_sums_in_float32():
    x = np.random.default_rng(4).standard_normal((2, 16, 16, 4)).astype(np.float32) + 8.0
    y = F.avg_pool(jnp.asarray(x, jnp.bfloat16), (7, 7), 1, "SAME")
    assert y.dtype == jnp.bfloat16
    xb = np.asarray(jnp.asarray(x, jnp.bfloat16), np.float64)
    want = reference.pool(xb, (7, 7), kind="avg", strides=(1, 1), padding="SAME")
    # one rounding of the output (bf16 keeps 8 bits: 2**-8 relative), not 49 of the sum
    np.testing.assert_allclose(np.asarray(y, np.float64), want, rtol=2 ** -8, atol=0)


def test_batch_axes_and_global_pools():
    x = jnp.asarray(_input(2))
    stacked = jnp.stack([x, 2 * x])
    chex.assert_trees_all_close(F.max_pool(stacked, (2, 2), 2)[1], F.max_pool(2 * x, (2, 2), 2))
    chex.assert_trees_all_close(F.avg_pool(x[0], (2, 2)), F.avg_pool(x, (2, 2))[0])
    chex.assert_trees_all_close(F.global_avg_pool(x), x.mean(axis=(1, 2)), atol=1e-6)
    chex.assert_trees_all_close(F.global_max_pool(x, keepdims=True), x.max(axis=(1, 2),
                                                                           keepdims=True))
    chex.assert_shape(F.global_avg_pool(stacked, rank=2), (2, 2, 3))


@pytest.mark.parametrize(("call", "message"), [
    (lambda x: F.max_pool(x, 3), "window_shape=3 must be a sequence"),
    (lambda x: F.max_pool(x, (9, 9)), "fewer than the window's reach of 9"),
    (lambda x: F.max_pool(x, (2, 2, 2, 2)), "too few for a 4-D pool"),
    (lambda x: F.avg_pool(x, (2, 2), count_include_pad=1), "count_include_pad=1 must be a bool"),
    (lambda x: F.avg_pool(x.astype(jnp.int32), (2, 2)), "not floating point"),
    (lambda x: F.max_pool(x, (2, 2), padding="FULL"), "padding='FULL' is not a padding name"),
    (lambda x: F.max_pool(x, (2, 2), padding_mode="mirror"), "padding_mode='mirror'"),
    (lambda x: F.global_avg_pool(x, rank=4), "rank=4"),
    (lambda x: F.global_avg_pool(x.astype(jnp.int32)), "not floating point"),
])
def test_bad_arguments_name_themselves(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call(jnp.ones((1, 7, 7, 2)))


def test_max_pool_keeps_integer_inputs():
    x = jnp.arange(8, dtype=jnp.int32).reshape(1, 8, 1)
    assert F.max_pool(x, (2,), 2, "SAME").tolist() == [[[1], [3], [5], [7]]]


@pytest.mark.parametrize("face", ["nnx", "linen"])
def test_layers_are_the_functional_ops_in_either_data_format(face):
    x = jnp.asarray(_input(2))
    first = jnp.moveaxis(x, -1, 1)
    layers = jn if face == "nnx" else jl
    cases = [
        (layers.MaxPool((3, 3), strides=(2, 2), padding="SAME"),
         F.max_pool(x, (3, 3), 2, "SAME")),
        (layers.AvgPool((3, 3), padding=1, count_include_pad=False),
         F.avg_pool(x, (3, 3), padding=1, count_include_pad=False)),
        (layers.GlobalAvgPool(), F.global_avg_pool(x)),
        (layers.GlobalMaxPool(keepdims=True), F.global_max_pool(x, keepdims=True)),
    ]
    for layer, want in cases:
        run = layer if face == "nnx" else (lambda a, m=layer: m.apply({}, a))
        chex.assert_trees_all_close(run(x), want)
        if face == "nnx":
            fields = {k: getattr(layer, k) for k in ("keepdims",) if hasattr(layer, k)}
            if isinstance(layer, jn.MaxPool | jn.AvgPool):
                continue
            layer_first = type(layer)(data_format="channels_first", **fields)
        else:
            layer_first = layer.clone(data_format="channels_first")
        run_first = layer_first if face == "nnx" else (lambda a, m=layer_first: m.apply({}, a))
        got = run_first(first)
        chex.assert_trees_all_close(got if got.ndim == 2 else jnp.moveaxis(got, 1, -1), want)


def test_nnx_pools_in_channels_first_and_in_a_jitted_model():
    x = jnp.asarray(_input(2))
    pool = jn.MaxPool((2, 2), strides=(2, 2), data_format="channels_first")
    chex.assert_trees_all_close(pool(jnp.moveaxis(x, -1, 1)),
                                jnp.moveaxis(F.max_pool(x, (2, 2), 2), -1, 1))

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = jn.Conv(3, 4, (3, 3), rngs=rngs)
            self.pool = jn.AvgPool((2, 2), strides=(2, 2))

        def __call__(self, a):
            return self.pool(self.conv(a))

    net = Net(nnx.Rngs(0))
    chex.assert_trees_all_close(nnx.jit(lambda m, a: m(a))(net, x), net(x), atol=1e-6)
    assert not jax.tree.leaves(nnx.state(net.pool))
    with pytest.raises(ValueError, match="data_format='NCHW'"):
        jn.MaxPool((2, 2), data_format="NCHW")


def test_a_pad_as_wide_as_the_window_is_refused():
    with pytest.raises(ValueError, match="windows that see only padding"):
        F.max_pool(jnp.ones((1, 4, 1)), (2,), 1, ((2, 0),))
    with pytest.raises(ValueError, match="windows that see only padding"):
        F.avg_pool(jnp.ones((1, 4, 4, 1)), (3, 3), 1, 3, count_include_pad=False)


def test_pools_differentiate_under_jit():
    x = jnp.asarray(_input(2))

    def loss(a):
        return (F.max_pool(a, (3, 3), 2, "SAME").sum() + F.avg_pool(a, (2, 2), 1, 1).sum()
                + F.avg_pool(a, (3, 3), padding=1, count_include_pad=False).sum())

    chex.assert_trees_all_close(jax.jit(jax.grad(loss))(x), jax.grad(loss)(x), atol=1e-6)


@pytest.mark.parametrize("op", [
    F.max_pool, functools.partial(F.avg_pool, count_include_pad=False), F.avg_pool])
def test_a_dilated_window_that_sees_only_padding_is_refused(op):
    # pads (2, 1) are both narrower than the reach 4, but the taps land at -2 and 1: padding
    with pytest.raises(ValueError, match=r"output position 0 of spatial dim 0 has its taps "
                                         r"at \[-2, 1\], outside the input's 1 position"):
        op(jnp.ones((1, 1, 1)), (2,), padding=((2, 1),), window_dilation=3)
    with pytest.raises(ValueError, match=r"output position 0 of spatial dim 1"):
        op(jnp.ones((1, 3, 1, 1)), (1, 2), padding=((0, 0), (1, 2)), window_dilation=(1, 3))


def test_a_high_pad_as_wide_as_the_reach_that_no_window_reaches_is_valid():
    # the stride skips the all-padding window: every window pooled holds an input
    x = jnp.arange(1.0, 4.0).reshape(1, 3, 1)
    assert F.max_pool(x, (2,), 2, ((0, 2),)).tolist() == [[[2.0], [3.0]]]
    assert F.avg_pool(x, (2,), 2, ((0, 2),), count_include_pad=False).tolist() == [[[1.5],
                                                                                     [3.0]]]
