"""`conv`, `depthwise_conv` and `separable_conv` against the NumPy reference."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import functional as F
from tests import reference as ref

PADDINGS = ["SAME", "valid", "CAUSAL", "CIRCULAR", "reflect", "REPLICATE", "int", "per_dim",
            "pairs"]
MODES = ["zeros", "circular", "reflect", "replicate"]


def random_config(seed: int) -> dict:
    """A random conv config: rank 1-3, strides, both dilations, groups, any padding and fill."""
    r = np.random.default_rng(seed)
    rank = int(r.integers(1, 4))
    size_hi = {1: 12, 2: 9, 3: 6}[rank]
    spatial = tuple(int(v) for v in r.integers(4, size_hi, rank))
    kernel = tuple(int(v) for v in r.integers(1, 4, rank))
    groups = int(r.choice([1, 1, 2, 3]))
    padding = PADDINGS[seed % len(PADDINGS)]
    mode = MODES[(seed // len(PADDINGS)) % len(MODES)]
    if padding.upper() in ref.SHORTCUTS:
        mode = "zeros"
    input_dilation = (tuple(int(v) for v in r.integers(1, 3, rank))
                      if mode == "zeros" and padding.upper() not in ref.SHORTCUTS
                      and r.random() < 0.3 else (1,) * rank)
    if padding == "int":
        padding = int(r.integers(0, 3))
    elif padding == "per_dim":
        padding = tuple(int(v) for v in r.integers(0, 3, rank))
    elif padding == "pairs":
        padding = tuple((int(a), int(b)) for a, b in r.integers(0, 3, (rank, 2)))
    return dict(
        x_shape=(2, *spatial, groups * int(r.integers(1, 3))),
        kernel_shape=(*kernel, None, groups * int(r.integers(1, 3))),
        strides=tuple(int(v) for v in r.integers(1, 4, rank)),
        kernel_dilation=tuple(int(v) for v in r.integers(1, 3, rank)),
        input_dilation=input_dilation, groups=groups, padding=padding, padding_mode=mode)


def _arrays(cfg, seed):
    r = np.random.default_rng(seed + 1000)
    x = r.standard_normal(cfg["x_shape"]).astype(np.float32)
    kshape = list(cfg["kernel_shape"])
    kshape[-2] = cfg["x_shape"][-1] // cfg["groups"]
    k = r.standard_normal(kshape).astype(np.float32)
    return x, k


def _reference(x, k, cfg):
    return ref.conv(x, k, strides=cfg["strides"], padding=cfg["padding"],
                    fill=cfg["padding_mode"], input_dilation=cfg["input_dilation"],
                    kernel_dilation=cfg["kernel_dilation"], groups=cfg["groups"])


@pytest.mark.parametrize("seed", range(48))
def test_random_configs_match_reference(seed):
    cfg = random_config(seed)
    x, k = _arrays(cfg, seed)
    expected = _reference(x, k, cfg)
    if 0 in expected.shape:
        with pytest.raises(ValueError, match="output would be empty"):
            F.conv(jnp.asarray(x), jnp.asarray(k), strides=cfg["strides"],
                   padding=cfg["padding"], padding_mode=cfg["padding_mode"],
                   input_dilation=cfg["input_dilation"],
                   kernel_dilation=cfg["kernel_dilation"], feature_group_count=cfg["groups"])
        return
    for impl in ("xla", "auto"):
        got = F.conv(jnp.asarray(x), jnp.asarray(k), strides=cfg["strides"],
                     padding=cfg["padding"], padding_mode=cfg["padding_mode"],
                     input_dilation=cfg["input_dilation"], kernel_dilation=cfg["kernel_dilation"],
                     feature_group_count=cfg["groups"], impl=impl)
        chex.assert_trees_all_close(np.asarray(got, np.float64), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("size", [7, 8])
def test_same_output_is_ceil_of_input_over_stride_with_extra_on_high_side(size, stride):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, size, size, 2)), jnp.float32)
    k = jnp.ones((4, 4, 2, 1), jnp.float32)
    y = F.conv(x, k, strides=stride)
    assert y.shape[1:3] == (-(-size // stride),) * 2
    expected = ref.conv(np.asarray(x), np.asarray(k), strides=(stride,) * 2, padding="SAME")
    chex.assert_trees_all_close(np.asarray(y, np.float64), expected, atol=1e-4, rtol=1e-4)


def test_causal_output_never_sees_later_inputs():
    x = jnp.zeros((1, 10, 1), jnp.float32).at[0, 6, 0].set(1.0)
    y = F.conv(x, jnp.ones((3, 1, 1), jnp.float32), padding="CAUSAL", kernel_dilation=2)
    assert y.shape == (1, 10, 1)
    assert np.all(np.asarray(y)[0, :6, 0] == 0)
    assert np.asarray(y)[0, 6, 0] == 1


@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_unbatched_and_multi_batch_inputs(batch):
    r = np.random.default_rng(1)
    x = jnp.asarray(r.standard_normal((*batch, 6, 6, 4)), jnp.float32)
    k = jnp.asarray(r.standard_normal((3, 3, 4, 5)), jnp.float32)
    y = F.conv(x, k, strides=2)
    assert y.shape == (*batch, 3, 3, 5)
    flat = np.asarray(x).reshape((-1, 6, 6, 4))
    expected = ref.conv(flat, np.asarray(k), strides=(2, 2), padding="SAME")
    chex.assert_trees_all_close(np.asarray(y, np.float64).reshape(expected.shape), expected,
                                atol=1e-4, rtol=1e-4)


def test_four_spatial_dims():
    r = np.random.default_rng(2)
    x = r.standard_normal((1, 4, 3, 4, 3, 2)).astype(np.float32)
    k = r.standard_normal((2, 2, 1, 2, 2, 3)).astype(np.float32)
    y = F.conv(jnp.asarray(x), jnp.asarray(k), padding="VALID")
    expected = ref.conv(x, k, strides=(1,) * 4, padding="VALID")
    chex.assert_trees_all_close(np.asarray(y, np.float64), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_depthwise_matches_grouped_reference(rank, multiplier):
    r = np.random.default_rng(rank)
    x = r.standard_normal((2, *(5,) * rank, 3)).astype(np.float32)
    k = r.standard_normal((*(3,) * rank, 1, 3 * multiplier)).astype(np.float32)
    b = r.standard_normal((3 * multiplier,)).astype(np.float32)
    y = F.depthwise_conv(jnp.asarray(x), jnp.asarray(k), jnp.asarray(b), strides=2,
                         kernel_dilation=2, padding="REFLECT")
    expected = ref.conv(x, k, strides=(2,) * rank, padding="REFLECT",
                        kernel_dilation=(2,) * rank, groups=3) + b
    chex.assert_trees_all_close(np.asarray(y, np.float64), expected, atol=1e-4, rtol=1e-4)


def test_separable_is_depthwise_then_pointwise():
    r = np.random.default_rng(3)
    x = r.standard_normal((2, 7, 7, 4)).astype(np.float32)
    dk = r.standard_normal((3, 3, 1, 8)).astype(np.float32)
    pk = r.standard_normal((8, 5)).astype(np.float32)
    y = F.separable_conv(jnp.asarray(x), jnp.asarray(dk), jnp.asarray(pk), strides=2)
    mid = ref.conv(x, dk, strides=(2, 2), padding="SAME", groups=4)
    expected = ref.conv(mid, pk[None, None], strides=(1, 1), padding="VALID")
    chex.assert_trees_all_close(np.asarray(y, np.float64), expected, atol=1e-4, rtol=1e-4)


def test_channel_shuffle_interleaves_groups():
    x = jnp.arange(2 * 12, dtype=jnp.float32).reshape(2, 12)
    y = F.channel_shuffle(x, 3)
    assert np.asarray(y)[0].tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]
    chex.assert_trees_all_equal(F.channel_shuffle(F.channel_shuffle(x, 3), 4), x)


class TestJitVariants(chex.TestCase):
    """The ops give the same answer traced under `jax.jit` and run eagerly."""

    @chex.variants(with_jit=True, without_jit=True)
    def test_conv_and_transpose(self):
        r = np.random.default_rng(4)
        x = jnp.asarray(r.standard_normal((2, 6, 6, 4)), jnp.float32)
        k = jnp.asarray(r.standard_normal((3, 3, 4, 4)), jnp.float32)

        @self.variant
        def both(x, k):
            y = F.conv(x, k, strides=2, padding="CIRCULAR")
            return y, F.conv_transpose(y, k, strides=2, padding=1, output_padding=1)

        y, z = both(x, k)
        expected = ref.conv(np.asarray(x), np.asarray(k), strides=(2, 2), padding="CIRCULAR")
        chex.assert_trees_all_close(np.asarray(y, np.float64), expected, atol=1e-4, rtol=1e-4)
        assert z.shape == x.shape


def test_ops_are_named_in_the_lowered_program():
    x, k = jnp.ones((1, 4, 4, 2)), jnp.ones((3, 3, 2, 2))
    text = jax.jit(lambda x, k: F.conv(x, k)).lower(x, k).as_text(debug_info=True)
    assert "jaxconv.conv" in text
