"""Mixed precision: bfloat16 forward and backward, float32 everything that accumulates."""

import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv import data, models, train
from jaxconv import nnx as jnn
from tests import modules


def _losses(workdir: pathlib.Path) -> np.ndarray:
    return np.array([r["loss"] for r in train.read_jsonl(workdir / "metrics.jsonl")
                     if r["kind"] == "train"])


def _conv_dtypes(steps, model, tr, recipe) -> set[str]:
    """The element types of every convolution and matrix product in the StableHLO of the
    program `fit` runs (`Steps.train_many`), e.g. ``{"bf16"}``."""
    from jaxconv.train import loop
    from jaxconv.train import step as S

    state = S.replicate(S.mesh(), steps.init(model, 0))
    text = steps.train_many.lower(state, *loop._timing_call(tr, recipe)).as_text()
    ops = [line for line in text.splitlines()
           if "stablehlo.convolution" in line or "stablehlo.dot_general" in line]
    assert ops, "no convolution in the step"
    return {t for line in ops for t in re.findall(r"x(bf16|f32|f16)>", line.split(":")[-1])}


def test_a_bfloat16_run_follows_the_float32_loss_curve(tmp_path):
    """100 steps of a preset with depthwise and 1x1 layers on digits: the step's convolutions
    and matrix products really run in bf16 (f32 in the float32 run), the 10-step moving
    average of the bf16 loss stays within 0.25 of the fp32 one (measured: about 0.1 on an AVX2
    CPU, 0.16 on an AVX-512 one), and what the optimizer and BatchNorm accumulate stays
    float32."""
    tr, te = data.load("digits", "train"), data.load("digits", "test")
    curves, results = {}, {}
    for dtype, hlo in (("float32", {"f32"}), ("bfloat16", {"bf16"})):
        model = modules.build(lambda rngs: models.create("inverted_residual-0.1m",
                                                         num_classes=10, in_features=1,
                                                         rngs=rngs))
        recipe = train.Recipe(epochs=3, batch_size=32, learning_rate=0.05, eval_batch_size=120,
                              log_every=1,
                              compile_options="default", compute_dtype=dtype)
        steps = train.build_steps(model, tr, recipe)
        assert _conv_dtypes(steps, model, tr, recipe) == hlo
        results[dtype] = train.fit(model, tr, te, recipe, seed=0, workdir=tmp_path / dtype,
                                   progress=False, steps=steps)
        curves[dtype] = _losses(tmp_path / dtype)[:100]
    assert len(curves["bfloat16"]) == 100

    def smooth(c):
        return np.convolve(c, np.ones(10) / 10, "valid")

    gap = np.abs(smooth(curves["float32"]) - smooth(curves["bfloat16"]))
    assert gap.max() < 0.25, gap.max()
    assert smooth(curves["bfloat16"])[-1] < 0.5 * smooth(curves["bfloat16"])[0]
    state = nnx.state(results["bfloat16"].model)
    assert {leaf.dtype for leaf in jax.tree.leaves(state)} == {jnp.dtype(jnp.float32)}


def test_set_dtypes_makes_a_model_compute_in_bfloat16_with_float32_parameters():
    spec = models.layout("convnext", 8, depth=1)
    model = modules.build(lambda rngs: models.ConvNet(spec, num_classes=10, in_features=1,
                                                      rngs=rngs, dtype=jnp.bfloat16))
    x = jnp.ones((2, 8, 8, 1), jnp.bfloat16)
    with jax.numpy_dtype_promotion("strict"):
        logits = nnx.jit(lambda m: m(x))(model)
        grads = nnx.jit(nnx.grad(lambda m: m(x).astype(jnp.float32).sum()))(model)
    assert logits.dtype == jnp.bfloat16
    assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
    assert {p.dtype for p in jax.tree.leaves(nnx.state(model))} == {jnp.dtype(jnp.float32)}
    reference = modules.build(lambda rngs: models.ConvNet(spec, num_classes=10, in_features=1,
                                                          rngs=rngs))
    np.testing.assert_allclose(np.asarray(logits, np.float32),
                               nnx.jit(lambda m: m(x.astype(jnp.float32)))(reference),
                               atol=0.1, rtol=0.1)


def test_param_dtype_casts_parameters_but_not_batchnorm_statistics():
    model = modules.build(lambda rngs: models.ConvNet(
        models.layout("bottleneck", 8, depth=1), num_classes=10, in_features=1, rngs=rngs,
        dtype=jnp.bfloat16, param_dtype=jnp.bfloat16))
    assert {p.dtype for p in jax.tree.leaves(nnx.state(model, nnx.Param))} == \
        {jnp.dtype(jnp.bfloat16)}
    assert {s.dtype for s in jax.tree.leaves(nnx.state(model, nnx.BatchStat))} == \
        {jnp.dtype(jnp.float32)}
    assert nnx.jit(lambda m: m(jnp.ones((1, 8, 8, 1), jnp.bfloat16)))(model).dtype == \
        jnp.bfloat16


def test_bad_dtypes_name_the_argument():
    with pytest.raises(ValueError, match="dtype='int8' is not a floating dtype"):
        jnn.set_dtypes(jnn.Pointwise(2, 2, rngs=nnx.Rngs(0)), "int8")
    with pytest.raises(ValueError, match="compute_dtype: 'float16' is not one of"):
        train.Recipe(compute_dtype="float16")


def test_training_state_is_float32_whatever_the_model_was_built_with():
    from jaxconv.train import step as S

    model = modules.build(lambda rngs: models.ConvNet(
        models.layout("basic", 8, depth=1), num_classes=10, in_features=1, rngs=rngs,
        dtype=jnp.bfloat16, param_dtype=jnp.bfloat16))
    for dtype in ("bfloat16", "float32"):
        steps = S.build(model, train.Recipe(compute_dtype=dtype), steps_per_epoch=10,
                        num_classes=10, mean=np.zeros(1), std=np.ones(1))
        state = steps.init(model, 0)
        assert {p.dtype for p in jax.tree.leaves(state.params)} == {jnp.dtype(jnp.float32)}
        assert {p.dtype for p in jax.tree.leaves(state.opt_state)
                if jnp.issubdtype(p.dtype, jnp.floating)} == {jnp.dtype(jnp.float32)}
        assert steps.merge(state).head.dtype == jnp.dtype(dtype)
