"""Gradients of every op, checked numerically with `jax.test_util.check_grads`."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxconv import functional as F

CASES = {
    "conv_1d_causal_dilated": (lambda x, k: F.conv(x, k, padding="CAUSAL", kernel_dilation=2),
                               (2, 7, 2), (3, 2, 3)),
    "conv_2d_stride_reflect": (lambda x, k: F.conv(x, k, strides=2, padding="REFLECT"),
                               (1, 6, 5, 2), (3, 3, 2, 2)),
    "conv_2d_groups_input_dilation": (
        lambda x, k: F.conv(x, k, input_dilation=2, feature_group_count=2, padding=1),
        (1, 4, 4, 4), (2, 2, 2, 2)),
    "conv_3d_circular": (lambda x, k: F.conv(x, k, padding_mode="circular"),
                         (1, 3, 4, 3, 2), (2, 2, 2, 2, 2)),
    "pointwise_strided": (lambda x, k: F.pointwise(x, k, strides=(2, 2)), (1, 5, 5, 3), (3, 4)),
    "depthwise_replicate": (lambda x, k: F.depthwise_conv(x, k, padding_mode="replicate"),
                            (1, 5, 5, 2), (3, 3, 1, 4)),
    "transpose_2d_groups": (lambda x, k: F.conv_transpose(x, k, strides=2, padding=1,
                                                          output_padding=1,
                                                          feature_group_count=2),
                            (1, 3, 3, 4), (3, 3, 1, 4)),
}


#: The case also checked op by op (55 small programs to compile).
EAGER = "conv_1d_causal_dilated"


@pytest.mark.parametrize("name", sorted(CASES))
def test_check_grads(name):
    fn, x_shape, k_shape = CASES[name]
    r = np.random.default_rng(0)
    with jax.enable_x64(True):
        x = jnp.asarray(r.standard_normal(x_shape))
        k = jnp.asarray(r.standard_normal(k_shape))
        # under jit: its numerical differences and both modes compile once per derivative
        # (op by op, one case compiled 233 small programs); the cheapest case also runs op by
        # op, so the ops' eager path is checked too
        check_grads(jax.jit(fn), (x, k), order=2, modes=["fwd", "rev"])
        if name == EAGER:
            check_grads(fn, (x, k), order=2, modes=["fwd", "rev"])

