"""Bad input raises before XLA, naming the argument, the value and what was expected."""

import jax.numpy as jnp
import pytest

from jaxconv import functional as F

X = jnp.ones((2, 8, 8, 16))
K = jnp.ones((3, 3, 32, 64))


def test_channel_mismatch_names_both_counts_and_the_kernel():
    expected = (r"input has 16 channels but the kernel expects 32 "
                r"\(kernel shape \(3, 3, 32, 64\), feature_group_count=1\)")
    with pytest.raises(ValueError, match=expected):
        F.conv(X, K)


def test_input_rank_too_small_for_the_kernel():
    with pytest.raises(ValueError, match=r"input shape \(8, 16\) has 2 dims, too few for a 2-D"):
        F.conv(jnp.ones((8, 16)), jnp.ones((3, 3, 16, 4)))


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match="feature_group_count=3 does not divide the input's 16"):
        F.conv(X, jnp.ones((3, 3, 5, 6)), feature_group_count=3)
    with pytest.raises(ValueError, match="feature_group_count=4 does not divide the kernel's 6"):
        F.conv(X, jnp.ones((3, 3, 4, 6)), feature_group_count=4)


@pytest.mark.parametrize("name", ["strides", "kernel_dilation", "input_dilation"])
@pytest.mark.parametrize("value", [0, -1, (1, 0)])
def test_non_positive_strides_and_dilations(name, value):
    with pytest.raises(ValueError, match=rf"{name}={value!r} must be >= 1".replace("(", r"\(")
                       .replace(")", r"\)")):
        F.conv(X, jnp.ones((3, 3, 16, 4)), **{name: value})


def test_strides_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"strides=\(1, 2, 3\) does not fit a 2-D convolution"):
        F.conv(X, jnp.ones((3, 3, 16, 4)), strides=(1, 2, 3))


def test_unknown_padding_string_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"padding='HALF' is not a padding name; expected one of "
                                         r"'SAME', 'VALID', 'CAUSAL', 'CIRCULAR', 'REFLECT', "
                                         r"'REPLICATE'"):
        F.conv(X, jnp.ones((3, 3, 16, 4)), padding="HALF")


def test_unknown_padding_mode_and_contradicting_shortcut():
    with pytest.raises(ValueError, match=r"padding_mode='mirror' is not one of 'zeros', "
                                         r"'circular', 'reflect', 'replicate'"):
        F.conv(X, jnp.ones((3, 3, 16, 4)), padding_mode="mirror")
    with pytest.raises(ValueError, match="contradicts padding_mode='reflect'"):
        F.conv(X, jnp.ones((3, 3, 16, 4)), padding="CIRCULAR", padding_mode="reflect")


def test_bad_padding_forms():
    with pytest.raises(ValueError, match=r"padding=\(1, 2, 3\) does not fit a 2-D convolution"):
        F.conv(X, jnp.ones((3, 3, 16, 4)), padding=(1, 2, 3))
    with pytest.raises(ValueError, match="negative amount"):
        F.conv(X, jnp.ones((3, 3, 16, 4)), padding=-1)


def test_empty_output_is_an_error():
    with pytest.raises(ValueError, match="output would be empty"):
        F.conv(jnp.ones((1, 2, 2, 16)), jnp.ones((3, 3, 16, 4)), padding="VALID")


def test_output_padding_must_be_smaller_than_the_stride():
    with pytest.raises(ValueError, match=r"output_padding=\(2, 2\) must be smaller than "
                                         r"strides=\(2, 2\)"):
        F.conv_transpose(X, jnp.ones((3, 3, 4, 16)), strides=2, output_padding=2)


def test_transpose_channel_mismatch_and_fill_padding():
    with pytest.raises(ValueError, match="input has 16 channels but the kernel expects 8"):
        F.conv_transpose(X, jnp.ones((3, 3, 4, 8)))
    with pytest.raises(ValueError, match="padding='CIRCULAR' fills with 'circular'"):
        F.conv_transpose(X, jnp.ones((3, 3, 4, 16)), padding="CIRCULAR")


def test_impl_that_cannot_express_the_call_lists_those_that_can():
    with pytest.raises(ValueError, match=r"impl='matmul' cannot express this conv: the kernel is "
                                         r"\(3, 3\), not 1x..x1; formulations that can: 'auto', "
                                         r"'autotune', 'xla', 'canonical', 'patches', "
                                         r"'row_taps'"):
        F.conv(X, jnp.ones((3, 3, 16, 4)), impl="matmul")
    with pytest.raises(ValueError, match=r"impl='fft' is not a formulation of conv; expected "
                                         r"'auto', 'autotune' or one of 'xla', 'canonical', "
                                         r"'matmul'"):
        F.conv(X, jnp.ones((3, 3, 16, 4)), impl="fft")


def test_dtype_mismatch_is_a_type_error():
    with pytest.raises(TypeError, match="dtypes differ \\(x float32, kernel bfloat16\\)"):
        F.conv(X, jnp.ones((3, 3, 16, 4), jnp.bfloat16))


def test_bias_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"bias shape \(5,\) does not match the 4 output"):
        F.conv(X, jnp.ones((3, 3, 16, 4)), jnp.ones((5,)))


def test_depthwise_kernel_shape_and_multiplier():
    with pytest.raises(ValueError, match="is not a depthwise kernel"):
        F.depthwise_conv(X, jnp.ones((3, 3, 16, 16)))
    with pytest.raises(ValueError, match="output channels are not a multiple of the input's 16"):
        F.depthwise_conv(X, jnp.ones((3, 3, 1, 24)))
    with pytest.raises(ValueError, match=r"depth_multiplier=3 but the kernel shape"):
        F.depthwise_conv(X, jnp.ones((3, 3, 1, 32)), depth_multiplier=3)


def test_pointwise_int_stride_with_dense_kernel_is_ambiguous():
    with pytest.raises(ValueError, match=r"strides=2 with a \(C_in, C_out\) kernel"):
        F.pointwise(X, jnp.ones((16, 4)), strides=2)


def test_channel_shuffle_groups_must_divide():
    with pytest.raises(ValueError, match="groups=3 does not divide the input's 16 channels"):
        F.channel_shuffle(X, 3)


def test_errors_are_raised_at_trace_time_under_jit():
    import jax

    with pytest.raises(ValueError, match="input has 16 channels"):
        jax.jit(F.conv)(X, K)


def test_numpy_integers_are_ints_everywhere():
    """Sizes computed with NumPy (``np.int64``) are accepted as Python ints are."""
    import numpy as np
    from flax import nnx

    from jaxconv import nnx as jnn

    x = jnp.ones((1, 8, 8, 4))
    expected = F.conv(x, jnp.ones((3, 3, 2, 4)), strides=2, padding=1, feature_group_count=2,
                      kernel_dilation=(1, 2))
    got = F.conv(x, jnp.ones((3, 3, 2, 4)), strides=np.int64(2), padding=np.int32(1),
                 feature_group_count=np.int64(2), kernel_dilation=np.array([1, 2]))
    np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))
    layer = jnn.Conv(np.int64(4), 6, (np.int64(3), 3), strides=np.int64(2), rngs=nnx.Rngs(0))
    assert layer(x).shape == (1, 4, 4, 6)
    point = jnn.Pointwise(4, 6, strides=(np.int64(2), 2), rngs=nnx.Rngs(0))
    assert point(x).shape == (1, 4, 4, 6)
    with pytest.raises(TypeError, match=r"strides=np.True_ is a bool"):
        F.conv(x, jnp.ones((3, 3, 4, 4)), strides=np.bool_(True))
