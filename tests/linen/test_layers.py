"""`jaxconv.linen` layers: drop-in for `flax.linen.Conv`, bit-identical to the NNX twins."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import jaxconv as jc

X = jnp.asarray(np.random.default_rng(0).standard_normal((2, 9, 9, 6)), jnp.float32)


@pytest.mark.parametrize("kwargs", [dict(), dict(strides=2, padding="CIRCULAR"),
                                    dict(feature_group_count=2, kernel_dilation=2, padding=2)])
def test_flax_linen_parameters_give_identical_outputs(kwargs):
    params = nn.Conv(4, (3, 3), **kwargs).init(jax.random.key(0), X)
    ours = jc.linen.Conv(4, (3, 3), impl="xla", **kwargs)
    chex.assert_trees_all_equal(ours.init(jax.random.key(0), X), params)
    theirs = nn.Conv(4, (3, 3), **kwargs)
    chex.assert_trees_all_equal(ours.apply(params, X), theirs.apply(params, X))


def test_linen_fields_include_every_flax_field():
    ours = {f: getattr(jc.linen.Conv, f, None) for f in jc.linen.Conv.__dataclass_fields__}
    for name in nn.Conv.__dataclass_fields__:
        assert name in ours, name


def _nnx_twin(name, params):
    """The NNX layer matching a Linen layer, with the Linen parameters copied in."""
    p = params["params"]
    r = nnx.Rngs(0)
    make = {
        "Conv": lambda: jc.nnx.Conv(6, 4, (3, 3), strides=2, padding="REFLECT", rngs=r),
        "Pointwise": lambda: jc.nnx.Pointwise(6, 4, strides=(2, 2), rngs=r),
        "DepthwiseConv": lambda: jc.nnx.DepthwiseConv(6, (3, 3), depth_multiplier=2, rngs=r),
        "SeparableConv": lambda: jc.nnx.SeparableConv(6, 4, (3, 3), strides=2, rngs=r),
        "ConvTranspose": lambda: jc.nnx.ConvTranspose(6, 4, (3, 3), strides=2, padding=1,
                                                      output_padding=1, rngs=r),
    }[name]()
    for key, value in p.items():
        getattr(make, key)[...] = value
    return make


LINEN = {
    "Conv": jc.linen.Conv(4, (3, 3), strides=2, padding="REFLECT"),
    "Pointwise": jc.linen.Pointwise(4, strides=(2, 2)),
    "DepthwiseConv": jc.linen.DepthwiseConv((3, 3), depth_multiplier=2),
    "SeparableConv": jc.linen.SeparableConv(4, (3, 3), strides=2),
    "ConvTranspose": jc.linen.ConvTranspose(4, (3, 3), strides=2, padding=1, output_padding=1),
}


@pytest.mark.parametrize("name", sorted(LINEN))
def test_nnx_and_linen_are_bit_identical(name):
    layer = LINEN[name]
    params = layer.init(jax.random.key(1), X)
    params = jax.tree.map(lambda p: p + 0.1, params)   # non-zero biases too
    twin = _nnx_twin(name, params)
    chex.assert_trees_all_equal(layer.apply(params, X), twin(X))


def test_linen_refuses_int_kernel_on_images():
    with pytest.raises(ValueError, match="kernel_size=3 is an int"):
        jc.linen.Conv(4, 3).init(jax.random.key(0), X)


@pytest.mark.parametrize("kind,nnx_args,linen_args", [
    ("Conv", (6, 4, (3, 3)), (4, (3, 3))),
    ("Pointwise", (6, 4), (4,)),
    ("DepthwiseConv", (6, (3, 3)), ((3, 3),)),
    ("ConvTranspose", (6, 4, (3, 3)), (4, (3, 3))),
])
def test_nnx_and_linen_twins_agree_on_the_kernel_and_refuse_the_same_mask(kind, nnx_args,
                                                                          linen_args):
    groups = {} if kind == "DepthwiseConv" else {"feature_group_count": 2}
    layer = getattr(jc.nnx, kind)(*nnx_args, **groups, rngs=nnx.Rngs(0))
    params = getattr(jc.linen, kind)(*linen_args, **groups).init(jax.random.key(0), X)
    assert params["params"]["kernel"].shape == layer.kernel[...].shape
    if kind == "Pointwise":
        return
    wrong = jnp.ones((1, 2, 3, 4))
    message = re.escape(f"{kind}: mask shape (1, 2, 3, 4) does not match the kernel shape "
                        f"{tuple(layer.kernel[...].shape)}")
    with pytest.raises(ValueError, match=message):
        getattr(jc.nnx, kind)(*nnx_args, **groups, mask=wrong, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=message):
        getattr(jc.linen, kind)(*linen_args, **groups, mask=wrong).init(jax.random.key(0), X)


def test_a_transposed_conv_whose_groups_do_not_divide_its_outputs_names_its_own_argument():
    with pytest.raises(ValueError, match=r"feature_group_count=2 does not divide features=5"):
        jc.linen.ConvTranspose(5, (3, 3), feature_group_count=2).init(jax.random.key(0), X)
    with pytest.raises(ValueError, match=r"feature_group_count=2 does not divide out_features=5"):
        jc.nnx.ConvTranspose(6, 5, (3, 3), feature_group_count=2, rngs=nnx.Rngs(0))
