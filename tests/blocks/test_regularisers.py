"""Stochastic depth (drop-path) in residual blocks and models, and ConvNeXt's exact GELU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv import blocks, models
from tests import modules


def test_drop_path_drops_whole_examples_in_training_only():
    block = blocks.BasicBlock(8, 8, drop_path=0.5, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (64, 5, 5, 8))
    block.eval()
    branch = block.body(x)
    np.testing.assert_allclose(np.asarray(block(x)), np.asarray(jax.nn.relu(branch + x)),
                               rtol=1e-5, atol=1e-6)
    block.train()
    y, branch = np.asarray(block(x)), np.asarray(block.body(x))   # one draw per call
    dropped = np.all(np.isclose(y, np.asarray(jax.nn.relu(x)), atol=1e-6), axis=(1, 2, 3))
    kept = np.all(np.isclose(y, np.asarray(jax.nn.relu(2 * branch + x)), rtol=1e-4,
                             atol=1e-5), axis=(1, 2, 3))
    assert np.all(dropped | kept) and 10 < dropped.sum() < 54


@pytest.mark.parametrize("block", ["basic", "bottleneck", "resnext", "inverted_residual",
                                   "shuffle", "convnext"])
def test_model_drop_path_rises_linearly_over_depth(block):
    spec = models.ModelSpec.from_dict({**models.layout(block, 16).to_dict(), "drop_path": 0.2})
    model = nnx.eval_shape(lambda: models.ConvNet(spec, num_classes=10, in_features=1,
                                                  rngs=nnx.Rngs(0)))
    rates = [b.drop_path.rate for b in model.blocks]
    np.testing.assert_allclose(rates, np.linspace(0, 0.2, len(rates)))
    assert models.ConvNet.param_count(spec, num_classes=10, in_features=1) == \
        models.ConvNet.param_count(models.layout(block, 16), num_classes=10, in_features=1)


def test_model_drop_path_needs_residual_blocks():
    with pytest.raises(ValueError, match=r"model.drop_path: 0.1 needs residual blocks; block "
                                         r"'separable' of stages\[0\] has no residual branch"):
        models.ModelSpec.from_dict({**models.layout("separable", 8).to_dict(),
                                    "drop_path": 0.1})
    with pytest.raises(ValueError, match=r"drop_path=1.0 must be a number in \[0, 1\)"):
        blocks.BasicBlock(8, 8, drop_path=1.0, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_drop_path_drops_each_example_at_the_rate_asked(rate):
    n = 4000
    drop = blocks.BasicBlock(3, 3, drop_path=rate, rngs=nnx.Rngs(0)).drop_path
    y = np.asarray(drop(jnp.ones((n, 2, 2, 3))))
    dropped = np.all(y == 0, axis=(1, 2, 3))
    kept = np.all(np.isclose(y, 1 / (1 - rate)), axis=(1, 2, 3))
    assert np.all(dropped | kept)
    # the fraction dropped is a binomial proportion: within 4 standard deviations of the rate
    assert abs(dropped.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / n), dropped.mean()


@jax.jit
def _shifted(params):
    """Every parameter plus 0.1 of a normal draw of its own (one program: op by op, the draws
    compiled one by one took 9 s)."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    return jax.tree.unflatten(treedef, [p + 0.1 * jax.random.normal(k, p.shape)
                                        for p, k in zip(leaves, keys, strict=True)])


def test_a_model_with_drop_path_trains_stochastically_and_evaluates_deterministically():
    layout = models.layout("bottleneck", 8, depth=1).to_dict()
    spec = models.ModelSpec.from_dict({**layout, "drop_path": 0.3})
    model = modules.build(lambda rngs: models.ConvNet(spec, num_classes=4, in_features=1,
                                                      rngs=rngs))
    plain = modules.build(lambda rngs: models.ConvNet(models.ModelSpec.from_dict(layout),
                                                      num_classes=4, in_features=1, rngs=rngs))
    # residual branches start at zero (ResNet's zero-initialised last norm): shift every
    # parameter so that a dropped branch shows, the same in both models
    nnx.update(model, _shifted(nnx.state(model, nnx.Param)))
    nnx.update(plain, nnx.state(model, nnx.Param))
    x = jax.random.normal(jax.random.key(0), (16, 12, 12, 1))
    assert model.blocks[-1].drop_path.rate == pytest.approx(0.3)
    forward = nnx.jit(lambda m, a: m(a))
    model.eval()
    plain.eval()
    evaluated = np.asarray(forward(model, x))
    np.testing.assert_array_equal(np.asarray(forward(model, x)), evaluated)
    np.testing.assert_allclose(evaluated, np.asarray(forward(plain, x)), rtol=1e-6, atol=1e-6)
    model.train()
    first, second = np.asarray(forward(model, x)), np.asarray(forward(model, x))
    # each call draws anew; some examples lose a branch, so the outputs leave eval's
    assert not np.allclose(first, second) and not np.allclose(first, evaluated)
    grads = nnx.jit(nnx.grad(lambda m: jnp.mean(m(x) ** 2)))(model)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("approximate", [False, True])
def test_convnext_gelu_is_exact_unless_asked(approximate):
    options = {"gelu_approximate": True} if approximate else {}
    block = blocks.ConvNeXtBlock(8, 8, layer_scale=1.0, rngs=nnx.Rngs(0), **options)
    x = jax.random.normal(jax.random.key(1), (2, 9, 9, 8))
    hidden = block.expand(block.norm(block.depthwise(x)))
    expected = x + block.project(jax.nn.gelu(hidden, approximate=approximate))
    other = x + block.project(jax.nn.gelu(hidden, approximate=not approximate))
    np.testing.assert_allclose(np.asarray(block(x)), np.asarray(expected), rtol=1e-6, atol=1e-6)
    assert not np.allclose(np.asarray(block(x)), np.asarray(other), rtol=1e-6, atol=1e-6)
