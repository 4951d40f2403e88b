"""What the README and the guides promise and no other test pins down as it is worded there:
swapping Flax's conv for jaxconv's (docs/guides/flax-swap.md), and multi-host runs from a
program (docs/guides/multi-host.md)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from flax import nnx

import jaxconv as jc

SETTINGS = [dict(), dict(strides=2, padding="VALID"), dict(padding="CIRCULAR", kernel_dilation=2),
            dict(padding=((1, 0), (2, 1)), feature_group_count=3, use_bias=False)]
# (in, out, kernel, settings); by default the 1x1 runs as a matmul and the 3-channel stem as
# im2col + matmul, whose sums round differently from XLA's conv
CASES = [(6, 12, (3, 3), kwargs) for kwargs in SETTINGS] + [(6, 12, (1, 1), {}),
                                                              (3, 8, (3, 3), {})]


def _input(channels):
    return jnp.asarray(np.random.default_rng(0).standard_normal((2, 9, 9, channels)),
                       jnp.float32)


def _check_swap(params, theirs_out, ours_params, ours_out, impl):
    """The README: parameters and initialisation bit-identical; outputs the same to float32
    rounding by default, bit-identical with ``impl="xla"``."""
    chex.assert_trees_all_equal(ours_params, params)
    if impl == "xla":
        chex.assert_trees_all_equal(ours_out, theirs_out)
    else:
        chex.assert_trees_all_close(ours_out, theirs_out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("impl", ["auto", "xla"])
@pytest.mark.parametrize(("features", "out", "kernel", "kwargs"), CASES, ids=range(len(CASES)))
def test_swapping_flax_nnx_conv_for_jaxconvs(features, out, kernel, kwargs, impl):
    x = _input(features)
    theirs = nnx.Conv(features, out, kernel, rngs=nnx.Rngs(3), **kwargs)
    ours = jc.nnx.Conv(features, out, kernel, rngs=nnx.Rngs(3), impl=impl, **kwargs)
    _check_swap(nnx.state(theirs, nnx.Param), theirs(x), nnx.state(ours, nnx.Param), ours(x),
                impl)


@pytest.mark.parametrize("impl", ["auto", "xla"])
@pytest.mark.parametrize(("features", "out", "kernel", "kwargs"), CASES, ids=range(len(CASES)))
def test_swapping_flax_linen_conv_for_jaxconvs(features, out, kernel, kwargs, impl):
    x = _input(features)
    theirs = nn.Conv(out, kernel, **kwargs)
    ours = jc.linen.Conv(out, kernel, impl=impl, **kwargs)
    params = theirs.init(jax.random.key(3), x)
    _check_swap(params, theirs.apply(params, x), ours.init(jax.random.key(3), x),
                ours.apply(params, x), impl)


def test_cpu_processes_of_a_program_exchange_through_gloo_by_default():
    # docs/guides/multi-host.md: a program needs only jax.distributed.initialize()
    assert jax.config.jax_cpu_collectives_implementation == "gloo"
