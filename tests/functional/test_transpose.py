"""`conv_transpose`: reference values, shape inversion and the adjoint identity."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxconv import functional as F
from jaxconv.tuning import native
from tests import reference as ref


def transpose_config(seed: int) -> dict:
    r = np.random.default_rng(seed)
    rank = int(r.integers(1, 4))
    groups = int(r.choice([1, 2]))
    strides = tuple(int(v) for v in r.integers(1, 4, rank))
    dilation = tuple(int(v) for v in r.integers(1, 3, rank))
    kernel = tuple(int(v) for v in r.integers(1, 4, rank))
    windows = [ref.dilated(k, d) for k, d in zip(kernel, dilation)]
    forms = [("SAME", "VALID", "CAUSAL")[seed % 3], int(r.integers(0, 2)),
             tuple((int(r.integers(0, w)), int(r.integers(0, w))) for w in windows)]
    padding = forms[0] if seed % 2 else forms[1 + seed % 4 // 2]
    output_padding = (None if isinstance(padding, str)
                      else tuple(int(r.integers(0, max(s, d))) for s, d in zip(strides, dilation)))
    return dict(rank=rank, groups=groups, strides=strides, dilation=dilation, kernel=kernel,
                padding=padding, output_padding=output_padding,
                spatial=tuple(int(v) for v in r.integers(2, {1: 7, 2: 5, 3: 4}[rank], rank)))


def _forward_pads(cfg):
    """Forward-conv pads and output padding of the transposed config, from their definitions."""
    windows = [ref.dilated(k, d) for k, d in zip(cfg["kernel"], cfg["dilation"])]
    forward_in = [n * s for n, s in zip(cfg["spatial"], cfg["strides"])]
    pads = ref.pad_amounts(cfg["padding"], forward_in, windows, cfg["strides"])
    if cfg["output_padding"] is not None:
        return pads, cfg["output_padding"]
    if cfg["padding"] == "SAME":
        return pads, [max(s - w, 0) for s, w in zip(cfg["strides"], windows)]
    return pads, [0] * cfg["rank"]


@pytest.mark.parametrize("seed", range(30))
def test_random_configs_match_reference(seed):
    cfg = transpose_config(seed)
    r = np.random.default_rng(seed + 7)
    g = cfg["groups"]
    x = r.standard_normal((2, *cfg["spatial"], 2 * g)).astype(np.float32)
    k = r.standard_normal((*cfg["kernel"], int(r.integers(1, 3)), 2 * g)).astype(np.float32)
    pads, output_padding = _forward_pads(cfg)
    expected = ref.conv_transpose(x, k, strides=cfg["strides"], pads=pads,
                                  output_padding=output_padding,
                                  kernel_dilation=cfg["dilation"], groups=g)
    kwargs = dict(strides=cfg["strides"], padding=cfg["padding"],
                  output_padding=cfg["output_padding"], kernel_dilation=cfg["dilation"],
                  feature_group_count=g)
    if 0 in expected.shape:
        with pytest.raises(ValueError, match="output would be empty"):
            F.conv_transpose(jnp.asarray(x), jnp.asarray(k), **kwargs)
        return
    got = F.conv_transpose(jnp.asarray(x), jnp.asarray(k), **kwargs)
    chex.assert_trees_all_close(np.asarray(got, np.float64), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kernel", [1, 2, 3, 4])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_same_gives_in_times_stride_and_valid_gives_full(kernel, stride):
    x, k = jnp.ones((1, 5, 3)), jnp.ones((kernel, 2, 3))
    assert F.conv_transpose(x, k, strides=stride).shape == (1, 5 * stride, 2)
    assert F.conv_transpose(x, k, strides=stride, padding="VALID").shape == \
        (1, 4 * stride + kernel, 2)


@pytest.mark.parametrize("size", [9, 10, 11, 12])
def test_output_padding_inverts_the_forward_shape(size):
    """Every input size of a stride-3 conv comes back with the right output_padding."""
    k = jnp.ones((3, 3, 2, 4))
    y = F.conv(jnp.ones((1, size, size, 2)), k, strides=3, padding=1)
    op = (size + 2 - 3) % 3
    assert F.conv_transpose(y, k, strides=3, padding=1, output_padding=op).shape[1:3] == \
        (size, size)


@settings(max_examples=25, deadline=None)
@given(rank=st.integers(1, 3), stride=st.integers(1, 3), kernel=st.integers(1, 3),
       dilation=st.integers(1, 2), groups=st.sampled_from([1, 2]), pad=st.integers(0, 2),
       size=st.integers(3, 6), seed=st.integers(0, 2**16))
def test_adjoint_identity(rank, stride, kernel, dilation, groups, pad, size, seed):
    """<conv(x, k), y> == <x, conv_transpose(y, k)> with the same kernel and arguments."""
    window = ref.dilated(kernel, dilation)
    pad = min(pad, window - 1)
    if size + 2 * pad < window:
        return
    r = np.random.default_rng(seed)
    x = r.standard_normal((1, *(size,) * rank, 2 * groups))
    k = r.standard_normal((*(kernel,) * rank, 2, 3 * groups))
    kwargs = dict(strides=stride, padding=pad, kernel_dilation=dilation,
                  feature_group_count=groups)
    # each op compiled whole: op by op, an example compiled seven small programs
    cx = jax.jit(functools.partial(F.conv, **kwargs))(jnp.asarray(x, jnp.float32),
                                                      jnp.asarray(k, jnp.float32))
    y = r.standard_normal(cx.shape)
    op = (size + 2 * pad - window) % stride
    ty = jax.jit(functools.partial(F.conv_transpose, output_padding=op, **kwargs))(
        jnp.asarray(y, jnp.float32), jnp.asarray(k, jnp.float32))
    assert ty.shape == x.shape
    lhs = float(np.sum(np.asarray(cx, np.float64) * y))
    rhs = float(np.sum(x * np.asarray(ty, np.float64)))
    assert lhs == pytest.approx(rhs, rel=1e-4, abs=1e-3)


def test_equals_the_input_gradient_of_conv():
    r = np.random.default_rng(5)
    x = jnp.asarray(r.standard_normal((2, 9, 9, 4)), jnp.float32)
    k = jnp.asarray(r.standard_normal((3, 3, 2, 6)), jnp.float32)
    y, vjp = jax.vjp(lambda x: F.conv(x, k, strides=2, feature_group_count=2, impl="xla"), x)
    cot = jnp.asarray(r.standard_normal(y.shape), jnp.float32)
    (expected,) = vjp(cot)
    # SAME resolved to (1, 1) for the forward conv of 9 positions; the adjoint takes it as is.
    got = F.conv_transpose(cot, k, strides=2, padding=1, feature_group_count=2)
    chex.assert_trees_all_close(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("padding", ["SAME", "VALID", ((2, 1), (0, 2))])
def test_flax_conv_transpose_conversion_in_the_docs(padding):
    """A flax.nnx.ConvTranspose kernel kf equals ours after flipping and swapping I/O."""
    from flax import nnx

    layer = nnx.ConvTranspose(3, 5, (3, 3), strides=2, padding=padding, rngs=nnx.Rngs(0))
    x = jnp.asarray(np.random.default_rng(6).standard_normal((2, 4, 4, 3)), jnp.float32)
    kf = layer.kernel[...]
    ours_kernel = jnp.flip(kf, (0, 1)).swapaxes(-1, -2)
    ours_padding = padding if isinstance(padding, str) else tuple(
        (3 - 1 - lo, 3 - 1 - hi) for lo, hi in padding)
    got = F.conv_transpose(x, ours_kernel, layer.bias[...], strides=2, padding=ours_padding)
    chex.assert_trees_all_close(got, layer(x), atol=1e-5, rtol=1e-5)


def test_subpixel_sub_convs_take_the_forward_policy():
    """Each phase's stride-1 conv is an ordinary forward conv, so `auto` picks its formulation:
    on CPU a grouped one is split into dense convs, as `F.conv` would do with the same call."""
    x = jnp.ones((2, 5, 5, 8))
    k = jnp.ones((3, 3, 4, 8))            # (*k, C_out / groups, C_in), 2 groups
    f = jax.jit(lambda a, b: F.conv_transpose(a, b, strides=2, feature_group_count=2,
                                              impl="subpixel"))
    text = f.lower(x, k).as_text()
    direct = jax.jit(lambda a, b: F.conv(a, b, feature_group_count=2)).lower(
        x, jnp.ones((3, 3, 4, 8))).as_text()
    grouped = "feature_group_count = 2"
    assert (grouped in text) == (grouped in direct)
    chex.assert_trees_all_close(f(x, k), F.conv_transpose(x, k, strides=2, feature_group_count=2,
                                                          impl="xla"), atol=1e-4)


needs_native = pytest.mark.skipif(not native.available(), reason=str(native.reason()))


@needs_native
@pytest.mark.parametrize("seed", range(30))
def test_onednn_values_and_both_gradients_equal_xla(seed):
    """``impl="onednn"`` computes the transposed conv as oneDNN's backward-data convolution of
    its adjoint: values and both gradients equal the lax formulation's on random configs
    (where it claims them; the test asserts it claims most)."""
    cfg = transpose_config(seed)
    r = np.random.default_rng(seed + 11)
    g = cfg["groups"]
    x = jnp.asarray(r.standard_normal((2, *cfg["spatial"], 2 * g)), jnp.float32)
    k = jnp.asarray(r.standard_normal((*cfg["kernel"], 3, 2 * g)), jnp.float32)
    kwargs = dict(strides=cfg["strides"], padding=cfg["padding"],
                  output_padding=cfg["output_padding"], kernel_dilation=cfg["dilation"],
                  feature_group_count=g)
    try:
        plan = F.plan(x.shape, k.shape, op="conv_transpose", impl="xla", **kwargs)
    except ValueError:
        return
    if plan.candidates["onednn"] is not None:
        assert "output_padding" in plan.candidates["onednn"] or \
            "crops" in plan.candidates["onednn"], plan.candidates["onednn"]
        pytest.skip(plan.candidates["onednn"])

    def grads(impl):
        fn = lambda a, b: jnp.sum(jnp.sin(F.conv_transpose(a, b, impl=impl, **kwargs)))  # noqa: E731
        return jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(x, k)

    chex.assert_trees_all_close(grads("onednn"), grads("xla"), atol=1e-4, rtol=1e-4)


@needs_native
def test_onednn_calls_backward_data_without_inserted_zeros():
    """The forward pass is one native backward-data call on the undilated input (no
    ``lhs_dilation``, no flipped kernel); its gradients are the forward conv and
    backward-weights."""
    x, k = jnp.ones((2, 6, 6, 8)), jnp.ones((3, 3, 4, 8))
    fn = lambda a, b: F.conv_transpose(a, b, strides=2, impl="onednn")  # noqa: E731
    text = jax.jit(fn).lower(x, k).as_text()
    assert text.count("@jaxconv_onednn_conv_backward_data(") == 1
    assert "lhs_dilat" not in text and "reverse" not in text
    grad_text = jax.jit(jax.grad(lambda a, b: jnp.sum(fn(a, b)), argnums=(0, 1))).lower(
        x, k).as_text()
    assert "@jaxconv_onednn_conv_forward(" in grad_text
    assert "@jaxconv_onednn_conv_backward_weights(" in grad_text


def test_onednn_refuses_output_padding_past_the_last_window():
    """A stride-1, dilated transposed conv whose output_padding reaches past every window has
    no non-negative adjoint padding: refused, with why, and the other formulations still run."""
    plan = F.plan((1, 5, 4), (3, 2, 4), op="conv_transpose", impl="xla", padding="VALID",
                  output_padding=1, kernel_dilation=2)
    assert "output_padding reaches 1 positions past the last window" in plan.candidates["onednn"]
    assert plan.impl != "onednn" and plan.candidates["xla"] is None
