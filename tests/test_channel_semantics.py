"""The questions people ask about channels, answered by executable checks.

1. How does a conv turn 3 input channels into 32 feature maps?
2. What does a 3-D conv do to an input of depth 1?
3. What exactly is a 1x1 conv?
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxconv as jc
from jaxconv import functional as F

IMAGE = jnp.asarray(np.random.default_rng(0).standard_normal((1, 64, 64, 3)), jnp.float32)


def n_params(module) -> int:
    return sum(p.size for p in jax.tree.leaves(nnx.state(module, nnx.Param)))


def test_conv_3_to_32_is_32_filters_each_spanning_all_3_channels():
    layer = jc.nnx.Conv(3, 32, (3, 3), rngs=nnx.Rngs(0))
    assert layer.kernel.shape == (3, 3, 3, 32)
    assert layer.kernel.size == 864 and layer.bias.size == 32 and n_params(layer) == 896
    y = layer(IMAGE)
    assert y.shape == (1, 64, 64, 32)
    # Output map o = bias[o] + sum over the 3 input channels c of a single-channel 2-D
    # correlation of channel c with the 2-D slice kernel[:, :, c, o]: 3 x 32 = 96 slices.
    kernel = layer.kernel[...]
    slices = [[F.conv(IMAGE[..., c:c + 1], kernel[:, :, c:c + 1, o:o + 1], impl="xla")
               for c in range(3)] for o in range(32)]
    assert sum(len(per_output) for per_output in slices) == 96
    summed = jnp.concatenate([sum(per_output) for per_output in slices], axis=-1)
    chex.assert_trees_all_close(y, summed + layer.bias[...][None, None, None], atol=1e-5,
                                rtol=1e-5)


def test_conv3d_on_depth_one_only_uses_the_middle_depth_slice():
    layer = jc.nnx.Conv(3, 32, (3, 3, 3), rngs=nnx.Rngs(1))
    assert layer.kernel.shape == (3, 3, 3, 3, 32)
    assert n_params(layer) == 2624
    volume = IMAGE[:, None]                         # (1, 1, 64, 64, 3): depth 1
    y = layer(volume)
    assert y.shape == (1, 1, 64, 64, 32)
    # SAME pads depth 1 with one zero plane on each side: only kernel[1] ever touches data.
    middle = layer.kernel[...][1]
    chex.assert_trees_all_close(y[:, 0], F.conv(IMAGE, middle, layer.bias[...]),
                                atol=1e-5, rtol=1e-5)


def test_1x1_conv_32_to_8_is_a_dense_layer_at_every_pixel():
    x = jnp.asarray(np.random.default_rng(2).standard_normal((2, 16, 16, 32)), jnp.float32)
    layer = jc.nnx.Conv(32, 8, (1, 1), rngs=nnx.Rngs(2))
    assert layer.kernel.shape == (1, 1, 32, 8)
    assert n_params(layer) == 264
    w, b = layer.kernel[...].reshape(32, 8), layer.bias[...]
    y = layer(x)
    h, v = 5, 11
    chex.assert_trees_all_close(y[0, h, v], w.T @ x[0, h, v] + b, atol=1e-5, rtol=1e-5)
    dense = nnx.Linear(32, 8, rngs=nnx.Rngs(0))
    dense.kernel[...], dense.bias[...] = w, b
    chex.assert_trees_all_close(y, dense(x), atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(y, jc.nnx.Pointwise(32, 8, rngs=nnx.Rngs(2))(x),
                                atol=1e-5, rtol=1e-5)
