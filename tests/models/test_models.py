"""ConvNet from specs, presets at their budgets, and spec validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxconv.models as M
from jaxconv.blocks import names
from tests import modules

X28 = jnp.asarray(np.random.default_rng(0).standard_normal((2, 28, 28, 1)), jnp.float32)


def n_params(module):
    return sum(p.size for p in jax.tree.leaves(nnx.state(module, nnx.Param)))


def test_presets_cover_every_family_and_budget():
    assert len(M.presets()) == 3 * len(names())
    for block in names():
        for budget in M.BUDGETS:
            assert f"{block}-{budget}" in M.presets()


@pytest.mark.parametrize("preset", M.presets())
def test_preset_parameters_match_the_formula_and_the_budget(preset):
    budget = M.BUDGETS[preset.rpartition("-")[2]]
    for channels in (1, 3):
        model = nnx.eval_shape(lambda c=channels: M.create(preset, num_classes=10, in_features=c,
                                                           rngs=nnx.Rngs(0)))
        count = n_params(model)
        assert count == M.ConvNet.param_count(M.spec(preset), num_classes=10,
                                              in_features=channels)
        assert 0.89 * budget <= count <= 1.12 * budget, (preset, count)


@pytest.mark.parametrize("block", names())
def test_preset_runs_under_jit_on_28_and_32_pixel_images(block):
    model = modules.build(lambda rngs: M.create(f"{block}-0.1m", num_classes=10, in_features=1,
                                                rngs=rngs))
    assert nnx.jit(lambda m, x: m(x))(model, X28).shape == (2, 10)
    assert nnx.eval_shape(lambda m, x: m(x), model, jnp.ones((2, 32, 32, 1))).shape == (2, 10)


def test_spec_round_trips_through_a_mapping():
    spec = M.spec("resnext-0.3m")
    assert M.ModelSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(("mapping", "message"), [
    ({"stages": [{"block": "basic", "width": 8}], "stem_widht": 8},
     r"model: unknown key 'stem_widht' \(did you mean 'stem_width'\?\); valid keys: stages, "
     r"stem_width, stem_strides, dropout"),
    ({"stages": [{"block": "fir", "width": 8}]},
     r"model.stages\[0\].block: block 'fir' does not exist \(did you mean 'fire'\?\)"),
    ({"stages": [{"block": "fire", "width": 0}]}, r"model.stages\[0\].width: 0 must be a "
                                                  r"positive int"),
    ({"stages": [{"block": "fire", "width": 8, "options": {"squeeze": 1}}]},
     r"model.stages\[0\].options: option of block 'fire': 'squeeze' does not exist"),
    ({"stages": []}, r"model.stages: expected a non-empty list"),
    ({"stages": [{"block": "basic", "width": 8}], "dropout": 1.5},
     r"model.dropout: 1.5 must be a number in \[0, 1\)"),
])
def test_spec_errors_name_the_key_path(mapping, message):
    with pytest.raises(ValueError, match=message):
        M.ModelSpec.from_dict(mapping)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"preset 'bottleneck-2m' does not exist .*valid: "
                                         r"basic-0.1m"):
        M.create("bottleneck-2m", num_classes=10, in_features=1, rngs=nnx.Rngs(0))
