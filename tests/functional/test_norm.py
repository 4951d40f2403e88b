"""`jaxconv.functional.batch_norm`: Flax's values, and a written-out derivative equal to
autodiff's (forward and reverse mode, any order) and to numerical differences."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.test_util import check_grads

from jaxconv import functional as F

RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.standard_normal((6, 5, 4, 3)) * 2 + 0.5, jnp.float32)
SCALE = jnp.asarray(RNG.standard_normal(3), jnp.float32)
BIAS = jnp.asarray(RNG.standard_normal(3), jnp.float32)


def autodiff_batch_norm(x, scale, bias, epsilon=1e-5):
    """The same forward in plain jnp, differentiated by JAX: the reference."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axes)
    var = jnp.maximum(0.0, jnp.square(x).mean(axes) - jnp.square(mean))
    def per_channel(v):
        return v.reshape((1,) * (x.ndim - 1) + v.shape)

    y = (x - per_channel(mean)) * per_channel(jax.lax.rsqrt(var + epsilon) * scale) \
        + per_channel(bias)
    return y, mean, var


def test_values_are_flaxs_bits_and_the_statistics_numpys():
    bn = nnx.BatchNorm(3, epsilon=1e-5, rngs=nnx.Rngs(0))
    bn.scale[...], bn.bias[...] = SCALE, BIAS
    expected = nnx.jit(lambda layer, x: layer(x))(bn, X)
    # policy versions 1-3 reduce with lax, op for op as Flax does (version 4 may sum natively,
    # tests/functional/test_channel_sums.py)
    y, mean, var = jax.jit(functools.partial(
        F.batch_norm, compilation=F.Compilation(policy_version=3)))(X, SCALE, BIAS)
    np.testing.assert_array_equal(y, expected)
    np.testing.assert_allclose(jax.jit(F.batch_norm)(X, SCALE, BIAS)[0], expected, rtol=1e-5,
                               atol=1e-5)
    x64 = np.asarray(X, np.float64).reshape(-1, 3)
    np.testing.assert_allclose(mean, x64.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, x64.var(0), rtol=1e-5)


def test_the_written_out_backward_equals_autodiff_through_all_three_outputs():
    cotangents = [jnp.asarray(RNG.standard_normal(s), jnp.float32)
                  for s in (X.shape, (3,), (3,))]

    def loss(x, scale, bias):
        return sum(jnp.sum(out * c) for out, c in zip(F.batch_norm(x, scale, bias), cotangents))

    def reference(x, scale, bias):
        return sum(jnp.sum(out * c) for out, c in zip(autodiff_batch_norm(x, scale, bias),
                                                      cotangents))

    ours = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(X, SCALE, BIAS)
    theirs = jax.jit(jax.grad(reference, argnums=(0, 1, 2)))(X, SCALE, BIAS)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5 * float(jnp.max(jnp.abs(b))))


def test_gradients_match_numerical_differences():
    small = X[:2, :3, :2]
    # under jit (op by op, 124 small programs to compile), and op by op for the first order
    check_grads(jax.jit(lambda x, s, b: F.batch_norm(x, s, b)), (small, SCALE, BIAS), order=2,
                modes=("fwd", "rev"), atol=2e-2, rtol=2e-2)
    check_grads(F.batch_norm, (small, SCALE, BIAS), order=1, modes=("fwd", "rev"), atol=2e-2,
                rtol=2e-2)


def test_forward_mode_and_second_order_equal_autodiffs_under_jit():
    small = X[:3, :2, :2]
    tangents = tuple(jnp.asarray(RNG.standard_normal(a.shape), jnp.float32)
                     for a in (small, SCALE, BIAS))
    for fn in (F.batch_norm, autodiff_batch_norm):
        jax.jit(fn)(small, SCALE, BIAS)          # traced once before being differentiated
    ours = jax.jit(lambda *p: jax.jvp(F.batch_norm, p, tangents))(small, SCALE, BIAS)
    theirs = jax.jvp(autodiff_batch_norm, (small, SCALE, BIAS), tangents)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)

    def scalar(fn):
        return lambda x: jnp.sum(fn(x, SCALE, BIAS)[0] ** 3)

    np.testing.assert_allclose(jax.jit(jax.hessian(scalar(F.batch_norm)))(small[:2, :1, :1]),
                               jax.hessian(scalar(autodiff_batch_norm))(small[:2, :1, :1]),
                               rtol=1e-3, atol=1e-3)


def test_an_empty_batch_has_zero_parameter_gradients():
    """No crash, and no data means no gradient: zero for the scale and the bias (a sum over no
    examples), where autodiff of the same forward gives NaN for the scale."""
    empty = jnp.zeros((0, 4, 4, 3), jnp.float32)
    dx, dscale, dbias = jax.grad(lambda x, s, b: jnp.sum(F.batch_norm(x, s, b)[0]),
                                 argnums=(0, 1, 2))(empty, SCALE, BIAS)
    assert dx.shape == empty.shape
    np.testing.assert_array_equal(dscale, np.zeros(3, np.float32))
    np.testing.assert_array_equal(dbias, np.zeros(3, np.float32))


@pytest.mark.parametrize(("x", "scale", "bias", "error", "message"), [
    (X, jnp.ones(4), jnp.zeros(3), ValueError, r"scale has shape \(4,\); expected \(3,\)"),
    (X, jnp.ones(3), jnp.zeros((1, 3)), ValueError, r"bias has shape \(1, 3\); expected \(3,\)"),
    (X, jnp.ones(3, jnp.bfloat16), jnp.zeros(3), TypeError,
     r"scale has dtype bfloat16; expected x's dtype float32"),
    (X.astype(jnp.int32), jnp.ones(3, jnp.int32), jnp.zeros(3, jnp.int32), TypeError,
     r"x has dtype int32; expected a floating dtype"),
])
def test_bad_arguments_are_refused_by_name(x, scale, bias, error, message):
    with pytest.raises(error, match=message):
        F.batch_norm(x, scale, bias)
