"""How a program is compiled reaches the ops as an explicit static argument
(`jaxconv.functional.Compilation`, set on layers by `jaxconv.nnx.set_compilation`), never as a
setting read while tracing: a function jitted under one compilation is retraced, not reused,
under another; the deprecated context managers change nothing and say so."""

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from jaxconv import functional as F
from jaxconv import nnx as jnn
from jaxconv.tuning import machine

YNN_OFF = F.Compilation({machine.YNN_OPTION: "LIBRARY_FUSION_TYPE_REDUCE"})


@pytest.fixture
def avx2(monkeypatch):
    """A CPU class where ``auto`` dodges YNNPACK's 2-D convs unless the program turns them
    off."""
    monkeypatch.setattr(machine, "isa", lambda: "avx2")
    monkeypatch.setattr("jaxlib.version.__version__", "0.10.2")
    monkeypatch.delenv("XLA_FLAGS", raising=False)


def _kernel_ranks(layer, x):
    """The kernel ranks of the ``canonical`` convs the layer traces to."""
    graphdef, state = nnx.split(layer)
    jaxpr = jax.make_jaxpr(lambda s, x: nnx.merge(graphdef, s)(x))(state, x)
    return {len(eqn.params["spec"].kernel_shape) for eqn in jaxpr.jaxpr.eqns
            if eqn.primitive.name == "jaxconv_canonical"}


def test_set_compilation_reaches_every_conv_layer_and_its_op(avx2):
    model = nnx.Sequential(jnn.Conv(16, 16, (3, 3), rngs=nnx.Rngs(0)),
                           jnn.Pointwise(16, 8, rngs=nnx.Rngs(1)))
    x = jnp.ones((2, 8, 8, 16))
    assert _kernel_ranks(model, x) == {3}        # row_taps: one 1-D conv over the row taps
    jnn.set_compilation(model, YNN_OFF)
    assert model.layers[0].compilation is YNN_OFF and model.layers[1].compilation is YNN_OFF
    assert _kernel_ranks(model, x) == {4}        # canonical 2-D conv
    jnn.set_compilation(model, None)
    assert _kernel_ranks(model, x) == {3}


def test_a_jitted_function_is_retraced_under_another_compilation(avx2):
    layer = jnn.Conv(16, 16, (3, 3), rngs=nnx.Rngs(0))
    traces = []

    @jax.jit
    def apply(graphdef, state, x):
        traces.append(1)
        return nnx.merge(graphdef, state)(x)

    x = jnp.ones((2, 8, 8, 16))
    before = apply(*nnx.split(layer), x)
    jnn.set_compilation(layer, YNN_OFF)
    after = apply(*nnx.split(layer), x)
    assert len(traces) == 2
    assert jnp.allclose(before, after, atol=1e-5)


def test_compilation_is_checked():
    with pytest.raises(TypeError, match="compilation"):
        F.conv(jnp.ones((1, 4, 4, 2)), jnp.ones((1, 1, 2, 2)), compilation={"a": "b"})
    with pytest.raises(ValueError, match="batch_shards"):
        F.Compilation(batch_shards=0)
    with pytest.raises(TypeError, match="set_compilation"):
        jnn.set_compilation(jnn.Conv(2, 2, (1, 1), rngs=nnx.Rngs(0)), 4)


def test_the_old_context_managers_warn_and_change_nothing():
    x, k = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 1, 2))
    expected = F.depthwise_conv(x, k)
    with pytest.warns(DeprecationWarning, match="forward_mode_ad"), F.forward_mode_ad():
        assert jnp.array_equal(F.depthwise_conv(x, k), expected)
    with pytest.warns(DeprecationWarning, match="data_parallel"), F.data_parallel(2):
        assert jnp.array_equal(F.depthwise_conv(x, k), expected)
    with pytest.warns(DeprecationWarning, match="in_forward_mode_ad"):
        assert F.in_forward_mode_ad() is False


def test_linen_layers_take_a_compilation_field(avx2):
    from jaxconv import linen as jl

    x = jnp.ones((2, 8, 8, 16))

    def kernel_ranks(layer):
        params = layer.init(jax.random.key(0), x)
        jaxpr = jax.make_jaxpr(layer.apply)(params, x)
        return {len(eqn.params["spec"].kernel_shape) for eqn in jaxpr.jaxpr.eqns
                if eqn.primitive.name == "jaxconv_canonical"}

    assert kernel_ranks(jl.Conv(16, (3, 3))) == {3}
    assert kernel_ranks(jl.Conv(16, (3, 3), compilation=YNN_OFF)) == {4}


def test_the_trained_model_is_handed_out_without_the_engines_compilation():
    import numpy as np

    from jaxconv import train
    from jaxconv.train import step as step_lib

    model = nnx.Sequential(jnn.Conv(1, 4, (3, 3), rngs=nnx.Rngs(0)))
    steps = step_lib.build(model, train.Recipe(batch_size=8, compile_options="tuned"),
                           steps_per_epoch=1, num_classes=4, mean=np.zeros(1), std=np.ones(1))
    trained = steps.merge(steps.init(model, 0))
    assert trained.layers[0].compilation is None
    assert getattr(model.layers[0], "compilation", None) is None     # the caller's, untouched
