"""`jaxconv.nnx` layers: drop-in for `flax.nnx.Conv`, and sound on their own."""

import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxconv as jc

X = jnp.asarray(np.random.default_rng(0).standard_normal((2, 9, 9, 6)), jnp.float32)

FLAX_COMPATIBLE = [
    dict(),
    dict(strides=2, padding="VALID"),
    dict(strides=(2, 1), padding="CIRCULAR", kernel_dilation=2),
    dict(padding="REFLECT"),
    dict(padding=((1, 0), (2, 1)), feature_group_count=3),
    dict(padding=1, input_dilation=(1, 1), use_bias=False),
    dict(mask=jnp.tril(jnp.ones((3, 3)))[:, :, None, None] * jnp.ones((3, 3, 6, 12))),
]


def test_init_accepts_every_flax_argument_with_the_same_default():
    ours = inspect.signature(jc.nnx.Conv.__init__).parameters
    for name, param in inspect.signature(nnx.Conv.__init__).parameters.items():
        assert name in ours, name
        assert ours[name].kind == param.kind, name
        if not callable(param.default):
            assert ours[name].default == param.default, name


@pytest.mark.parametrize("kwargs", FLAX_COMPATIBLE, ids=range(len(FLAX_COMPATIBLE)))
def test_swapping_the_import_changes_nothing(kwargs):
    theirs = nnx.Conv(6, 12, (3, 3), rngs=nnx.Rngs(3), **kwargs)
    ours = jc.nnx.Conv(6, 12, (3, 3), rngs=nnx.Rngs(3), impl="xla", **kwargs)
    chex.assert_trees_all_equal(nnx.state(ours, nnx.Param), nnx.state(theirs, nnx.Param))
    chex.assert_trees_all_equal(ours(X), theirs(X))
    chex.assert_trees_all_close(jc.nnx.Conv(6, 12, (3, 3), rngs=nnx.Rngs(3), **kwargs)(X),
                                theirs(X), atol=1e-5, rtol=1e-5)


def test_flax_parameters_load_into_ours():
    theirs = nnx.Conv(6, 4, (1, 1), strides=2, rngs=nnx.Rngs(1))
    ours = jc.nnx.Conv(6, 4, (1, 1), strides=2, rngs=nnx.Rngs(99), impl="xla")
    nnx.update(ours, nnx.state(theirs, nnx.Param))
    chex.assert_trees_all_equal(ours(X), theirs(X))


def test_dtype_promotion_follows_flax():
    theirs = nnx.Conv(6, 4, (3, 3), dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    ours = jc.nnx.Conv(6, 4, (3, 3), dtype=jnp.bfloat16, rngs=nnx.Rngs(0), impl="xla")
    assert ours(X).dtype == jnp.bfloat16
    chex.assert_trees_all_equal(ours(X), theirs(X))


def test_custom_conv_general_dilated_is_used():
    calls = []

    def spy(*args, **kwargs):
        calls.append(kwargs["feature_group_count"])
        return jax.lax.conv_general_dilated(*args, **kwargs)

    jc.nnx.Conv(6, 4, (3, 3), conv_general_dilated=spy, rngs=nnx.Rngs(0))(X)
    assert calls == [1]


def test_int_kernel_size_on_an_image_is_refused_not_reinterpreted():
    layer = jc.nnx.Conv(6, 4, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"kernel_size=3 is an int, which makes a 1-D "
                                         r"convolution, but the input has shape \(2, 9, 9, 6\)"):
        layer(X)
    assert layer(X[:, 0]).shape == (2, 9, 4)


def test_wrong_input_channels_name_in_features():
    with pytest.raises(ValueError, match="has 5 channels but the layer was built with "
                                         "in_features=6"):
        jc.nnx.Conv(6, 4, (3, 3), rngs=nnx.Rngs(0))(X[..., :5])


def test_bad_arguments_fail_at_construction():
    with pytest.raises(ValueError, match="feature_group_count=4 does not divide"):
        jc.nnx.Conv(6, 4, (3, 3), feature_group_count=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="padding='same_lower' is not a padding name"):
        jc.nnx.Conv(6, 4, (3, 3), padding="same_lower", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="impl='matmul' cannot express"):
        jc.nnx.Conv(6, 4, (3, 3), impl="matmul", rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="impl=3 must be 'auto', 'autotune', a formulation"):
        jc.nnx.Conv(6, 4, (3, 3), impl=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"strides=2 is ambiguous"):
        jc.nnx.Pointwise(6, 4, strides=2, rngs=nnx.Rngs(0))


def test_shapes_of_every_layer():
    r = nnx.Rngs(0)
    assert jc.nnx.Pointwise(6, 4, strides=(2, 2), rngs=r)(X).shape == (2, 5, 5, 4)
    assert jc.nnx.DepthwiseConv(6, (3, 3), depth_multiplier=2, rngs=r).kernel.shape == \
        (3, 3, 1, 12)
    assert jc.nnx.SeparableConv(6, 8, (3, 3), strides=2, rngs=r)(X).shape == (2, 5, 5, 8)
    layer = jc.nnx.ConvTranspose(6, 4, (3, 3), strides=2, feature_group_count=2, rngs=r)
    assert layer.kernel.shape == (3, 3, 2, 6)
    assert layer(X).shape == (2, 18, 18, 4)


def test_pointwise_layer_equals_a_1x1_flax_conv():
    theirs = nnx.Conv(6, 4, (1, 1), strides=(2, 2), rngs=nnx.Rngs(2))
    ours = jc.nnx.Pointwise(6, 4, strides=(2, 2), rngs=nnx.Rngs(2))
    chex.assert_trees_all_equal(ours.kernel[...], theirs.kernel[...].reshape(6, 4))
    chex.assert_trees_all_close(ours(X), theirs(X), atol=1e-5, rtol=1e-5)


def test_depthwise_layer_equals_a_grouped_flax_conv():
    theirs = nnx.Conv(6, 12, (3, 3), feature_group_count=6, rngs=nnx.Rngs(4))
    ours = jc.nnx.DepthwiseConv(6, (3, 3), depth_multiplier=2, rngs=nnx.Rngs(4))
    chex.assert_trees_all_equal(ours.kernel[...], theirs.kernel[...])
    chex.assert_trees_all_close(ours(X), theirs(X), atol=1e-5, rtol=1e-5)


def test_layers_train_under_nnx_jit():
    model = jc.nnx.SeparableConv(6, 3, (3, 3), rngs=nnx.Rngs(0))

    @nnx.jit
    def grads(model, x):
        return nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)

    g = grads(model, X)
    for leaf in jax.tree.leaves(g):
        assert jnp.all(jnp.isfinite(leaf)) and jnp.any(leaf != 0)


@pytest.mark.parametrize("make,x", [
    (lambda: jc.nnx.ConvTranspose(4, 4, (3, 3), padding=3, rngs=nnx.Rngs(0)), (1, 32, 32, 4)),
    (lambda: jc.nnx.Conv(4, 4, (3, 3), padding=5, padding_mode="reflect", rngs=nnx.Rngs(0)),
     (1, 16, 16, 4)),
    (lambda: jc.nnx.DepthwiseConv(4, (3, 3), padding=((4, 4), (4, 4)), padding_mode="circular",
                               rngs=nnx.Rngs(0)), (1, 12, 12, 4)),
])
def test_layers_that_some_input_size_can_run_are_built(make, x):
    """Construction checks size-independent facts only; the size is the call's business."""
    layer = make()
    assert layer(jnp.ones(x)).shape[0] == 1
