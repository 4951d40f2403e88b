"""``data_format="channels_first"``: the same layer, with PyTorch's layout at its boundary."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxconv.linen as jl
import jaxconv.nnx as jn

NNX = {
    "Conv": lambda f: jn.Conv(4, 6, (3, 3), strides=2, data_format=f, rngs=nnx.Rngs(0)),
    "Conv1D": lambda f: jn.Conv(4, 6, 3, data_format=f, rngs=nnx.Rngs(0)),
    "Pointwise": lambda f: jn.Pointwise(4, 6, strides=(1, 1), data_format=f, rngs=nnx.Rngs(0)),
    "DepthwiseConv": lambda f: jn.DepthwiseConv(4, (3, 3), data_format=f, rngs=nnx.Rngs(0)),
    "SeparableConv": lambda f: jn.SeparableConv(4, 5, (3, 3), data_format=f, rngs=nnx.Rngs(0)),
    "ConvTranspose": lambda f: jn.ConvTranspose(4, 3, (3, 3), strides=2, data_format=f,
                                                rngs=nnx.Rngs(0)),
}
LINEN = {
    "Conv": lambda f: jl.Conv(6, (3, 3), strides=2, data_format=f),
    "Pointwise": lambda f: jl.Pointwise(6, strides=(1, 1), data_format=f),
    "DepthwiseConv": lambda f: jl.DepthwiseConv((3, 3), data_format=f),
    "SeparableConv": lambda f: jl.SeparableConv(5, (3, 3), data_format=f),
    "ConvTranspose": lambda f: jl.ConvTranspose(3, (3, 3), strides=2, data_format=f),
}


def _input(name):
    shape = (2, 11, 4) if name == "Conv1D" else (2, 9, 7, 4)
    return jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)


@pytest.mark.parametrize("name", sorted(NNX))
def test_nnx_channels_first_is_the_channels_last_layer_transposed(name):
    x = _input(name)
    want = NNX[name]("channels_last")(x)
    got = NNX[name]("channels_first")(jnp.moveaxis(x, -1, 1))
    chex.assert_trees_all_close(got, jnp.moveaxis(want, -1, 1))


@pytest.mark.parametrize("name", sorted(LINEN))
def test_linen_channels_first_keeps_parameters_and_values(name):
    x = _input(name)
    last, first = LINEN[name]("channels_last"), LINEN[name]("channels_first")
    variables = last.init(jax.random.key(0), x)
    chex.assert_trees_all_equal_shapes(
        variables, first.init(jax.random.key(0), jnp.moveaxis(x, -1, 1)))
    got = first.apply(variables, jnp.moveaxis(x, -1, 1))
    chex.assert_trees_all_close(got, jnp.moveaxis(last.apply(variables, x), -1, 1))


def test_an_unknown_data_format_names_the_value():
    with pytest.raises(ValueError, match="Conv: data_format='NCHW' is not one of"):
        jn.Conv(4, 6, (3, 3), data_format="NCHW", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="data_format='NCHW'"):
        jl.Conv(6, (3, 3), data_format="NCHW").init(jax.random.key(0), jnp.ones((1, 4, 5, 5)))


HASHABLE = {
    **{name: (lambda make=make: make("channels_last")) for name, make in NNX.items()},
    "Conv with list padding": lambda: jn.Conv(4, 6, (3, 3), padding=[[1, 1], [0, 2]],
                                              rngs=nnx.Rngs(0)),
    "MaxPool": lambda: jn.MaxPool((2, 2), strides=[2, 2]),
    "AvgPool": lambda: jn.AvgPool((3, 3), padding=[[1, 1], [1, 1]], count_include_pad=False),
    "GlobalAvgPool": lambda: jn.GlobalAvgPool(),
}


@pytest.mark.parametrize("name", sorted(HASHABLE))
def test_graphdef_hashes_and_serves_as_a_static_jit_argument(name):
    layer = HASHABLE[name]()
    graphdef, state = nnx.split(layer)
    hash(graphdef)
    x = _input("Conv1D" if name == "Conv1D" else name)

    @jax.jit
    def run(state, x):
        return nnx.merge(graphdef, state)(x)

    static = jax.jit(lambda g, s, a: nnx.merge(g, s)(a), static_argnums=0)
    want = layer(x)
    chex.assert_trees_all_close(static(graphdef, state, x), want, atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(run(state, x), want, atol=1e-5, rtol=1e-5)


def test_changing_an_argument_after_construction_takes_effect():
    layer = jn.Conv(4, 6, (3, 3), rngs=nnx.Rngs(0))
    x = _input("Conv")
    assert layer(x).shape == (2, 9, 7, 6)
    layer.padding = "VALID"
    assert layer(x).shape == (2, 7, 5, 6)


def test_building_a_pointwise_layer_never_times_anything(monkeypatch):
    from jaxconv.functional import autotune

    def refuse(*args, **kwargs):
        raise AssertionError("a layer's constructor ran the autotuner")

    monkeypatch.setenv("JAXCONV_AUTOTUNE", "1")
    monkeypatch.setattr(autotune, "fastest", refuse)
    jn.Pointwise(4, 6, rngs=nnx.Rngs(0))
    jn.Pointwise(4, 6, strides=(2, 2), impl="autotune", rngs=nnx.Rngs(0))


def test_channels_first_pointwise_needs_its_rank_and_then_takes_any_batch_axes():
    with pytest.raises(ValueError, match=r"needs the spatial rank.*strides=\(1, 1\)"):
        jn.Pointwise(4, 5, data_format="channels_first", rngs=nnx.Rngs(0))(jnp.ones((4, 4, 6)))
    layer = jn.Pointwise(4, 5, strides=(1, 1), data_format="channels_first", rngs=nnx.Rngs(0))
    x = _input("Conv")                                   # (2, 9, 7, 4)
    last = jn.Pointwise(4, 5, strides=(1, 1), rngs=nnx.Rngs(0))
    chex.assert_trees_all_close(layer(jnp.moveaxis(x[0], -1, 0)),
                                jnp.moveaxis(last(x[0]), -1, 0))
    stacked = jnp.stack([x, x])                          # two batch axes
    chex.assert_trees_all_close(layer(jnp.moveaxis(stacked, -1, 2)),
                                jnp.moveaxis(last(stacked), -1, 2))


def test_a_list_kernel_size_still_hashes():
    for layer in (jn.Conv(4, 6, [3, 3], rngs=nnx.Rngs(0)),
                  jn.DepthwiseConv(4, [3, 3], rngs=nnx.Rngs(0))):
        hash(nnx.split(layer)[0])
