"""`jaxconv.nnx.BatchNorm` behaves as `flax.nnx.BatchNorm`: state, values, running statistics,
gradients, evaluation mode, and the cases it leaves to Flax."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv import functional as F
from jaxconv import nnx as jnn

RNG = np.random.default_rng(1)


def _pair(features=4, **kwargs):
    ours = jnn.BatchNorm(features, momentum=0.9, rngs=nnx.Rngs(0), **kwargs)
    theirs = nnx.BatchNorm(features, momentum=0.9, rngs=nnx.Rngs(0), **kwargs)
    for layer in (ours, theirs):
        if layer.scale is not None:
            layer.scale[...] = jnp.linspace(0.5, 1.5, features)
        layer.bias[...] = jnp.linspace(-0.2, 0.3, features)
    return ours, theirs


def _train_step(layer, x, g):
    def loss(layer, x):
        return jnp.sum(layer(x) * g)
    grads, dx = nnx.grad(loss, argnums=(0, 1))(layer, x)
    return layer(x), grads, dx


#: Policy versions 1-3 reduce with lax, op for op as Flax does: the same bits. Version 4 (the
#: current one) may sum the channels natively (AVX-512 CPUs with the extension): the same
#: values up to float rounding.
VERSIONS = [pytest.param(3, id="lax-reductions"), pytest.param(None, id="current-policy")]


def _same(version):
    if version == 3:
        return np.testing.assert_array_equal
    return lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("shape", [(8, 5, 5, 4), (16, 4), (3, 2, 2, 2, 4)])
def test_training_matches_flax(shape, version, monkeypatch):
    calls = []
    written_out = F.batch_norm
    monkeypatch.setattr(F, "batch_norm", lambda *a, **k: calls.append(1) or written_out(*a, **k))
    ours, theirs = _pair()
    jnn.set_compilation(ours, F.Compilation(policy_version=version))
    x = jnp.asarray(RNG.standard_normal(shape) * 3 + 1, jnp.float32)
    g = jnp.asarray(RNG.standard_normal(shape), jnp.float32)
    step = nnx.jit(_train_step)
    (y, grads, dx), (y_ref, grads_ref, dx_ref) = step(ours, x, g), step(theirs, x, g)
    _same(version)(y, y_ref)
    for name in ("mean", "var"):
        _same(version)(getattr(ours, name)[...], getattr(theirs, name)[...])
    assert float(jnp.max(jnp.abs(ours.mean[...]))) > 0.05     # the statistics did move
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-5 * float(jnp.max(abs(dx_ref))))
    for name in ("scale", "bias"):
        a, b = getattr(grads, name)[...], getattr(grads_ref, name)[...]
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.max(abs(b))))
    assert jax.tree.structure(nnx.state(ours)) == jax.tree.structure(nnx.state(theirs))
    assert calls, "the written-out backward was not used"


def test_evaluation_and_what_it_leaves_to_flax_are_flaxs_code(monkeypatch):
    calls = []
    monkeypatch.setattr(F, "batch_norm", lambda *a, **k: calls.append(1))
    x = jnp.asarray(RNG.standard_normal((6, 3, 3, 4)), jnp.float32)
    channels_first = jnp.moveaxis(x, -1, 1)
    cases = [({}, lambda m: m(x, use_running_average=True)),
             ({"axis": 1}, lambda m: m(channels_first)),
             ({"axis": (1,)}, lambda m: m(channels_first)),
             ({"use_fast_variance": False}, lambda m: m(x)),
             ({}, lambda m: m(x, mask=x > 0)),
             ({"dtype": jnp.bfloat16}, lambda m: m(x)),
             ({"use_scale": False}, lambda m: m(x))]
    for kwargs, call in cases:
        ours, theirs = _pair(**kwargs)
        with jax.numpy_dtype_promotion("standard"):     # Flax's bfloat16 case promotes
            np.testing.assert_array_equal(call(ours), call(theirs))
    ours, theirs = _pair()
    ours.eval(), theirs.eval()
    np.testing.assert_array_equal(ours(x), theirs(x))
    with pytest.raises(ValueError, match="use_running_average"):
        jnn.BatchNorm(4, use_running_average=None, rngs=nnx.Rngs(0))(x)
    assert not calls, "a case left to Flax went through the written-out backward"


@pytest.mark.parametrize("version", VERSIONS)
def test_forward_mode_autodiff_equals_flaxs_without_any_context(version):
    ours, theirs = _pair()
    jnn.set_compilation(ours, F.Compilation(policy_version=version))
    x = jnp.asarray(RNG.standard_normal((5, 2, 2, 4)), jnp.float32)
    tangent = jnp.ones_like(x)

    def jvp(layer):
        graphdef, state = nnx.split(layer)
        zeros = jax.tree.map(jnp.zeros_like, state)
        return jax.jvp(lambda s, v: nnx.merge(graphdef, s)(v), (state, x), (zeros, tangent))

    got, expected = jvp(ours), jvp(theirs)
    _same(version)(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=1e-5)


def test_bfloat16_inputs_work_under_strict_promotion():
    ours, theirs = _pair()
    x = jnp.asarray(RNG.standard_normal((4, 3, 3, 4)), jnp.bfloat16)
    with jax.numpy_dtype_promotion("standard"):
        expected = theirs(x)
    with jax.numpy_dtype_promotion("strict"):
        y = ours(x)
    np.testing.assert_array_equal(y, expected)
