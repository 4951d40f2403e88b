"""Every block: builds, runs under jit, counts its documented parameters, trains, evaluates
deterministically, and keeps its pinned parameter tree."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxconv.blocks as B
from tests import modules

GOLDEN = pathlib.Path(__file__).with_name("param_trees.json")
X = jnp.asarray(np.random.default_rng(0).standard_normal((2, 8, 8, 16)), jnp.float32)
# (in, out, stride): shape-preserving, downsampling with wider output, wider at stride 1.
CASES = [(16, 16, 1), (16, 32, 2), (16, 24, 1)]


def build(name, cin, cout, stride, **options):
    """Initialises as one compiled program instead of one per parameter."""
    return modules.build(lambda rngs: B.create(name, cin, cout, strides=stride, rngs=rngs,
                                               **options))
WITH_SE = ["basic", "bottleneck", "resnext", "inverted_residual"]


def n_params(module):
    return sum(p.size for p in jax.tree.leaves(nnx.state(module, nnx.Param)))


def param_tree(module):
    return {".".join(map(str, path)): "x".join(map(str, v.shape))
            for path, v in nnx.to_flat_state(nnx.state(module, nnx.Param))}


def test_registry_has_every_design_in_the_docs():
    assert B.names() == ["basic", "bottleneck", "resnext", "separable", "inverted_residual",
                         "fire", "shuffle", "convnext", "inception", "nin"]


@pytest.mark.parametrize("name", B.names())
def test_block_shape_params_gradients_and_eval(name):
    for cin, cout, stride in CASES[:2]:
        block = build(name, cin, cout, stride)
        assert n_params(block) == B.param_count(name, cin, cout, strides=stride)

        @nnx.jit
        def output_and_grads(block, x):
            def loss(b):
                y = b(x)
                return jnp.mean(y ** 2), y
            return nnx.value_and_grad(loss, has_aux=True)(block)

        (_, y), grads = output_and_grads(block, X)
        assert y.shape == (2, 8 // stride, 8 // stride, cout)
        for path, g in nnx.to_flat_state(grads):
            assert bool(jnp.all(jnp.isfinite(g[...]))), (name, path)
        block.eval()
        forward = nnx.jit(lambda b, x: b(x))
        first, second = forward(block, X), forward(block, X)
        assert bool(jnp.array_equal(first, second))


@pytest.mark.parametrize("name", WITH_SE)
def test_squeeze_excitation_option(name):
    plain = build(name, 16, 32, 2)
    se = build(name, 16, 32, 2, se_ratio=0.25)
    assert n_params(se) == B.param_count(name, 16, 32, strides=2, se_ratio=0.25) > n_params(plain)
    assert nnx.jit(lambda b, x: b(x))(se, X).shape == (2, 4, 4, 32)


def test_batchnorm_follows_train_and_eval():
    block = B.create("bottleneck", 16, 16, rngs=nnx.Rngs(0))
    before = block.reduce.norm.mean[...]
    block(X)
    assert not bool(jnp.array_equal(before, block.reduce.norm.mean[...]))
    block.eval()
    frozen = block.reduce.norm.mean[...]
    block(X)
    assert bool(jnp.array_equal(frozen, block.reduce.norm.mean[...]))


def test_every_1x1_is_a_pointwise_and_every_depthwise_a_depthwise_conv():
    from jaxconv import nnx as jnn

    for name in B.names():
        block = nnx.eval_shape(lambda name=name: B.create(name, 16, 32, strides=2,
                                                          rngs=nnx.Rngs(0)))
        for _, module in nnx.iter_modules(block):
            if isinstance(module, jnn.Conv):
                assert module.kernel.shape[:2] != (1, 1), name
                assert module.feature_group_count != module.in_features or \
                    module.in_features == 1, name


@pytest.mark.parametrize("name", B.names())
def test_documented_formula_for_every_case(name):
    for cin, cout, stride in CASES:
        block = nnx.eval_shape(lambda a=cin, b=cout, s=stride: B.create(name, a, b, strides=s,
                                                                        rngs=nnx.Rngs(0)))
        assert n_params(block) == B.param_count(name, cin, cout, strides=stride)


def test_parameter_trees_are_pinned():
    trees = {f"{name}/{cin}-{cout}-s{stride}":
             param_tree(nnx.eval_shape(lambda n=name, a=cin, b=cout, s=stride:
                                       B.create(n, a, b, strides=s, rngs=nnx.Rngs(0))))
             for name in B.names() for cin, cout, stride in CASES}
    assert trees == json.loads(GOLDEN.read_text())


def test_unknown_block_and_option_list_the_valid_ones():
    with pytest.raises(ValueError, match=r"block 'botleneck' does not exist \(did you mean "
                                         r"'bottleneck'\?\); valid: basic, bottleneck"):
        B.create("botleneck", 16, 16, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"option of block 'bottleneck': 'ration' does not "
                                         r"exist \(did you mean 'ratio'\?\); valid: ratio, "
                                         r"se_ratio"):
        B.create("bottleneck", 16, 16, rngs=nnx.Rngs(0), ration=0.5)


def test_shuffle_stride_two_needs_a_wider_output():
    with pytest.raises(ValueError, match="needs a branch width"):
        B.create("shuffle", 16, 16, strides=2, rngs=nnx.Rngs(0))
