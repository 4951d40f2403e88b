"""Reference initialisation per block family (`jaxconv.blocks.init`) and its model switches."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv import blocks, models
from jaxconv import nnx as jnn
from jaxconv.blocks import init as block_init
from jaxconv.experiment import config as config_lib
from tests import modules


def _std(param) -> float:
    return float(np.std(np.asarray(param[...])))


def _model(block: str, width: int = 16, **extra) -> models.ConvNet:
    spec = models.ModelSpec.from_dict({**models.layout(block, width).to_dict(), **extra})
    return modules.build(lambda rngs: models.ConvNet(spec, num_classes=10, in_features=1,
                                                     rngs=rngs))


# (block, path to a conv layer, expected std from its kernel shape)
EXPECTED_STD = [
    ("bottleneck", ("reduce", "conv"), lambda s: math.sqrt(2 / s[-1])),
    ("bottleneck", ("conv", "conv"), lambda s: math.sqrt(2 / (s[0] * s[1] * s[-1]))),
    ("resnext", ("conv", "conv"), lambda s: math.sqrt(2 / (s[0] * s[1] * s[-1]))),
    ("inverted_residual", ("expand", "conv"), lambda s: math.sqrt(2 / s[-1])),
    ("shuffle", ("depthwise", "conv"), lambda s: 1 / s[-2]),
    ("shuffle", ("reduce", "conv"), lambda s: 1 / s[-2]),
    ("fire", ("expand3", "conv"), lambda s: math.sqrt(2 / (s[0] * s[1] * s[2]))),
    ("convnext", ("expand",), lambda s: 0.02),
    ("inception", ("branch3", "conv"), lambda s: 0.01),
    ("nin", ("conv", "conv"), lambda s: math.sqrt(2 / (s[0] * s[1] * s[2]))),
]


@pytest.mark.parametrize("block,path,expected", EXPECTED_STD,
                         ids=[f"{b}-{'.'.join(p)}" for b, p, _ in EXPECTED_STD])
def test_each_family_draws_its_reference_kernels(block, path, expected):
    def create(rngs):
        built = blocks.create(block, 256, 256, rngs=rngs)
        block_init.init_block(built, block, jax.random.key(0))
        return built

    layer = modules.build(create)
    for name in path:
        layer = getattr(layer, name)
    shape = layer.kernel[...].shape
    assert layer.kernel[...].size >= 500, "too few values for a std check"
    np.testing.assert_allclose(_std(layer.kernel), expected(shape), rtol=0.12)


def test_flax_init_keeps_every_layers_lecun_default():
    model = _model("bottleneck", 32, init="flax")
    conv = model.blocks[-1].reduce.conv
    fan_in = conv.kernel[...].shape[0]
    np.testing.assert_allclose(_std(conv.kernel), math.sqrt(1 / fan_in), rtol=0.12)
    assert np.all(np.asarray(model.blocks[0].expand.norm.scale[...]) == 1)


def test_stem_and_classifier_follow_the_first_stage_family():
    resnet, mobile = _model("basic", 32), _model("inverted_residual", 32)
    stem = resnet.stem.conv.kernel[...]
    np.testing.assert_allclose(_std(resnet.stem.conv.kernel),
                               math.sqrt(2 / (9 * stem.shape[-1])), rtol=0.15)
    bound = 1 / math.sqrt(resnet.head.kernel[...].shape[0])
    assert float(np.max(np.abs(np.asarray(resnet.head.kernel[...])))) <= bound
    np.testing.assert_allclose(_std(resnet.head.kernel), bound / math.sqrt(3), rtol=0.15)
    bias = np.asarray(resnet.head.bias[...])
    assert np.all(np.abs(bias) <= bound) and np.std(bias) > bound / 10
    shuffle = _model("shuffle", 32)
    np.testing.assert_allclose(_std(shuffle.stem.conv.kernel), 0.01, rtol=0.3)
    np.testing.assert_allclose(_std(mobile.head.kernel), 0.01, rtol=0.15)
    assert not np.any(np.asarray(mobile.head.bias[...]))


def test_truncation_bound_is_in_the_values_units():
    """As torch.nn.init.trunc_normal_: cut at +-bound, not at +-bound standard deviations."""
    values = block_init.truncated(0.5, bound=0.75)(jax.random.key(0), (20000,))
    assert float(jnp.max(jnp.abs(values))) <= 0.75
    assert float(jnp.max(jnp.abs(values))) > 0.7
    assert float(jnp.std(values)) < 0.45


@pytest.mark.parametrize("block", ["basic", "bottleneck", "resnext"])
def test_resnet_family_zeroes_the_last_norm_of_every_branch(block):
    model = _model(block)
    for b in model.blocks:
        assert not np.any(np.asarray(b.residual_norm().scale[...]))
    off = _model(block, zero_init_residual=False)
    assert all(np.all(np.asarray(b.residual_norm().scale[...]) == 1) for b in off.blocks)


def test_zeroed_residual_block_starts_as_its_shortcut():
    block = blocks.BasicBlock(8, 8, rngs=nnx.Rngs(0))
    block_init.init_block(block, "basic", jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (2, 6, 6, 8))
    np.testing.assert_allclose(np.asarray(block(x)), np.asarray(jax.nn.relu(x)), atol=1e-6)


def test_mobile_blocks_zero_their_branch_only_when_asked():
    mobile = _model("inverted_residual")
    residual = [b for b in mobile.blocks if b.residual_norm() is not None]
    assert residual and all(np.all(np.asarray(b.residual_norm().scale[...]) == 1)
                            for b in residual)
    zeroed = _model("inverted_residual", zero_init_residual=True)
    assert all(not np.any(np.asarray(b.residual_norm().scale[...]))
               for b in zeroed.blocks if b.residual_norm() is not None)
    stride2 = blocks.ShuffleUnit(16, 32, strides=2, rngs=nnx.Rngs(0))
    assert stride2.residual_norm() is None


def test_every_conv_bias_starts_at_zero():
    block = blocks.ConvNeXtBlock(8, 16, strides=2, rngs=nnx.Rngs(0))
    layers = [m for _, m in nnx.iter_modules(block)
              if isinstance(m, block_init.CONV_LAYERS) and m.bias is not None]
    for layer in layers:
        layer.bias[...] = jnp.ones_like(layer.bias[...])
    block_init.init_block(block, "convnext", jax.random.key(0))
    assert len(layers) == 4 and not any(np.any(np.asarray(m.bias[...])) for m in layers)


def test_every_registry_block_has_a_scheme():
    assert set(block_init.SCHEMES) == set(blocks.names())
    with pytest.raises(ValueError, match="block 'resnet' does not exist"):
        block_init.scheme("resnet")


@pytest.mark.parametrize("data,match", [
    ({"init": "he"}, r"model.init: 'he' is not one of reference, flax"),
    ({"zero_init_residual": 1}, r"model.zero_init_residual: 1 must be true, false or null"),
    ({"init": "flax", "zero_init_residual": True}, r"needs init: reference"),
])
def test_spec_refuses_bad_init_settings(data, match):
    base = models.layout("basic", 8).to_dict()
    with pytest.raises(ValueError, match=match):
        models.ModelSpec.from_dict({**base, **data})


def test_config_sets_init_on_a_preset_and_round_trips():
    cfg = config_lib.from_mapping({
        "name": "t", "data": {"name": "digits"},
        "model": {"init": "flax"},
        "variants": [{"name": "a", "model": {"preset": "basic-0.1m"}},
                     {"name": "b", "model": {"preset": "basic-0.1m",
                                             "init": "reference",
                                             "zero_init_residual": False}}]})
    a, b = (v.model for v in cfg.variants)
    assert (a.init, a.zero_init_residual) == ("flax", None)
    assert (b.init, b.zero_init_residual) == ("reference", False)
    assert models.ModelSpec.from_dict(b.to_dict()) == b


def test_pointwise_fans_match_a_1x1_conv():
    """The ``(C_in, C_out)`` kernel of a `Pointwise` gets the fans of a 1x1 conv's."""
    layer = jnn.Pointwise(64, 256, rngs=nnx.Rngs(0))
    block_init.init_convs(layer, block_init.he_normal_fan_out(), jax.random.key(0))
    np.testing.assert_allclose(_std(layer.kernel), math.sqrt(2 / 256), rtol=0.05)


def test_zero_init_residual_needs_residual_blocks():
    with pytest.raises(ValueError, match=r"model.zero_init_residual: true needs residual "
                                         r"blocks; block 'convnext' of stages\[0\]"):
        models.ModelSpec.from_dict({**models.layout("convnext", 8).to_dict(),
                                    "zero_init_residual": True})


@pytest.mark.parametrize("extra", [{"drop_path": 0.2}, {"dropout": 0.3}])
def test_dropout_settings_leave_the_initial_weights_alone(extra):
    """Ablating a regulariser must not also change the initialisation."""
    def params(**more):
        spec = models.ModelSpec.from_dict({**models.layout("bottleneck", 8).to_dict(), **more})
        model = modules.build(lambda rngs: models.ConvNet(spec, num_classes=10, in_features=1,
                                                          rngs=rngs), seed=3)
        return jax.tree.leaves(nnx.state(model, nnx.Param))

    # built as two programs, the weights may round apart in the last ulp; a shifted random
    # stream would change every one of them
    for a, b in zip(params(), params(**extra), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
