"""Every formulation equals the ``"xla"`` reference: values and gradients, ranks 1-3, strides,
dilations, paddings, depth multipliers and groups."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import functional as F
from jaxconv.functional.formulations import depthwise_taps

DEPTHWISE = [
    dict(rank=1, kernel=5, strides=2, kernel_dilation=1, padding="CAUSAL", multiplier=1),
    dict(rank=2, kernel=3, strides=1, kernel_dilation=1, padding="SAME", multiplier=1),
    dict(rank=2, kernel=3, strides=2, kernel_dilation=2, padding=1, multiplier=2),
    dict(rank=2, kernel=7, strides=1, kernel_dilation=1, padding="REFLECT", multiplier=1),
    dict(rank=2, kernel=4, strides=(2, 1), kernel_dilation=1, padding="VALID", multiplier=3),
    dict(rank=3, kernel=3, strides=2, kernel_dilation=1, padding="SAME", multiplier=1),
    dict(rank=1, kernel=4, strides=1, kernel_dilation=1, padding="CAUSAL", multiplier=2),
    dict(rank=2, kernel=3, strides=1, kernel_dilation=2, padding="VALID", multiplier=2),
    dict(rank=2, kernel=3, strides=3, kernel_dilation=1, padding=((3, 0), (0, 4)), multiplier=1),
]
GROUPED = [
    dict(rank=1, kernel=3, strides=1, kernel_dilation=2, padding="SAME", groups=2),
    dict(rank=2, kernel=3, strides=2, kernel_dilation=1, padding="SAME", groups=4),
    dict(rank=2, kernel=3, strides=1, kernel_dilation=2, padding=((1, 2), (0, 1)), groups=3),
    dict(rank=3, kernel=2, strides=1, kernel_dilation=1, padding="VALID", groups=2),
]


def _close_with_grads(op, impl, x, k):
    """``impl`` against ``"xla"``: the values and both gradients, each side compiled as one
    program (op by op, the formulations' many small ops took most of this file's time; their
    eager and transformed calls are tests/functional/test_transforms.py's)."""
    def loss(impl):
        return lambda x, k: jnp.sum(op(x, k, impl) ** 2)

    def values_and_grads(impl):
        return jax.jit(lambda x, k: (op(x, k, impl),
                                     jax.grad(loss(impl), argnums=(0, 1))(x, k)))(x, k)

    (y, grads), (y_ref, grads_ref) = values_and_grads(impl), values_and_grads("xla")
    chex.assert_trees_all_close(y, y_ref, atol=2e-5, rtol=2e-5)
    chex.assert_trees_all_close(grads, grads_ref, atol=2e-3, rtol=2e-4)


@pytest.mark.parametrize("chunked", [False, True], ids=["one_pass", "chunked"])
@pytest.mark.parametrize("cfg", DEPTHWISE, ids=range(len(DEPTHWISE)))
def test_shift_equals_xla(cfg, chunked, monkeypatch):
    if chunked:  # the kernel gradient loops over the batch one image at a time
        monkeypatch.setattr(depthwise_taps, "CHUNK_BYTES", 1)
    r = np.random.default_rng(0)
    rank = cfg["rank"]
    x = jnp.asarray(r.standard_normal((3, *(7,) * rank, 6)), jnp.float32)
    k = jnp.asarray(r.standard_normal((*(cfg["kernel"],) * rank, 1, 6 * cfg["multiplier"])),
                    jnp.float32)

    def op(x, k, impl):
        return F.depthwise_conv(x, k, strides=cfg["strides"], padding=cfg["padding"],
                                kernel_dilation=cfg["kernel_dilation"], impl=impl)

    _close_with_grads(op, "shift", x, k)


PATCHES = [
    dict(rank=1, kernel=5, strides=1, kernel_dilation=2, padding="CAUSAL", cin=1),
    dict(rank=2, kernel=3, strides=1, kernel_dilation=1, padding="SAME", cin=1),
    dict(rank=2, kernel=3, strides=2, kernel_dilation=1, padding="SAME", cin=3),
    dict(rank=2, kernel=(3, 2), strides=(1, 2), kernel_dilation=2, padding="REFLECT", cin=5),
    dict(rank=3, kernel=2, strides=1, kernel_dilation=1, padding="VALID", cin=2),
]


@pytest.mark.parametrize("cfg", PATCHES, ids=range(len(PATCHES)))
def test_patches_equals_xla(cfg):
    r = np.random.default_rng(2)
    rank = cfg["rank"]
    kernel = cfg["kernel"] if isinstance(cfg["kernel"], tuple) else (cfg["kernel"],) * rank
    x = jnp.asarray(r.standard_normal((2, *(7,) * rank, cfg["cin"])), jnp.float32)
    k = jnp.asarray(r.standard_normal((*kernel, cfg["cin"], 4)), jnp.float32)

    def op(x, k, impl):
        return F.conv(x, k, strides=cfg["strides"], padding=cfg["padding"],
                      kernel_dilation=cfg["kernel_dilation"], impl=impl)

    _close_with_grads(op, "patches", x, k)


def test_auto_picks_patches_only_for_narrow_dense_convs(monkeypatch, without_native):
    from jaxconv.tuning import machine

    monkeypatch.setattr(machine, "isa", lambda: "avx512")  # the dense row of other CPUs aside
    assert F.plan((8, 28, 28, 1), (3, 3, 1, 32)).impl == "patches"
    assert F.plan((8, 32, 32, 3), (3, 3, 3, 32)).shape_class == "narrow"
    assert F.plan((8, 28, 28, 8), (3, 3, 8, 32)).shape_class == "dense"
    assert F.plan((8, 28, 28, 8), (3, 3, 8, 32)).impl == "canonical"
    # measured on 2-D images with small patch tensors, and applied only there
    assert F.plan((8, 100, 3), (5, 3, 16)).impl != "patches"
    assert F.plan((8, 16, 16, 16, 1), (3, 3, 3, 1, 8)).impl != "patches"
    assert F.plan((512, 224, 224, 3), (3, 3, 3, 64)).impl != "patches"


DEPTH_TAPS = [
    dict(kernel=3, strides=1, kernel_dilation=1, padding="SAME", depth=5),
    dict(kernel=(3, 2, 3), strides=(2, 1, 2), kernel_dilation=1, padding="VALID", depth=6),
    dict(kernel=3, strides=1, kernel_dilation=(2, 1, 2), padding=((1, 3), (0, 1), (2, 0)),
         depth=5),
    dict(kernel=2, strides=(3, 1, 1), kernel_dilation=1, padding="REFLECT", depth=7),
    # depth 1 under SAME: the outer depth taps read only padding and are left out
    dict(kernel=3, strides=1, kernel_dilation=1, padding="SAME", depth=1),
    # strides that step over every input depth: each tap reads padding only
    dict(kernel=1, strides=(2, 1, 1), kernel_dilation=1, padding=((1, 1), (0, 0), (0, 0)),
         depth=1),
]


@pytest.mark.parametrize("cfg", DEPTH_TAPS, ids=range(len(DEPTH_TAPS)))
def test_depth_taps_equals_xla(cfg):
    r = np.random.default_rng(3)
    kernel = cfg["kernel"] if isinstance(cfg["kernel"], tuple) else (cfg["kernel"],) * 3
    x = jnp.asarray(r.standard_normal((2, cfg["depth"], 6, 5, 3)), jnp.float32)
    k = jnp.asarray(r.standard_normal((*kernel, 3, 4)), jnp.float32)

    def op(x, k, impl):
        return F.conv(x, k, strides=cfg["strides"], padding=cfg["padding"],
                      kernel_dilation=cfg["kernel_dilation"], impl=impl)

    _close_with_grads(op, "depth_taps", x, k)


def test_depth_taps_is_for_dense_3d_convs(without_native):
    assert F.plan((2, 8, 8, 8, 16), (3, 3, 3, 16, 16)).impl == "depth_taps"
    assert F.plan((2, 8, 8, 16), (3, 3, 16, 16)).candidates["depth_taps"] == (
        "the conv is 2-D; depth taps are for 3-D convs")
    grouped = F.plan((2, 8, 8, 8, 16), (3, 3, 3, 4, 16), feature_group_count=4)
    assert grouped.impl == "split" and "feature_group_count=4" in \
        grouped.candidates["depth_taps"]


@pytest.mark.parametrize(("batch", "image_bytes", "expected"),
                         [(128, 1 << 18, 4), (128, 1 << 30, 1), (6, 1 << 18, 3), (7, 1 << 18, 1),
                          (2, 1, 2)])
def test_kernel_gradient_chunks_divide_the_batch_and_fit_the_budget(batch, image_bytes,
                                                                   expected):
    assert depthwise_taps.chunk_size(batch, image_bytes) == expected


@pytest.mark.parametrize("cfg", GROUPED, ids=range(len(GROUPED)))
def test_split_equals_xla(cfg):
    r = np.random.default_rng(1)
    rank, g = cfg["rank"], cfg["groups"]
    x = jnp.asarray(r.standard_normal((2, *(6,) * rank, 2 * g)), jnp.float32)
    k = jnp.asarray(r.standard_normal((*(cfg["kernel"],) * rank, 2, 3 * g)), jnp.float32)

    def op(x, k, impl):
        return F.conv(x, k, strides=cfg["strides"], padding=cfg["padding"],
                      kernel_dilation=cfg["kernel_dilation"], feature_group_count=g, impl=impl)

    _close_with_grads(op, "split", x, k)


def test_bfloat16_formulations_track_xla():
    r = np.random.default_rng(2)
    x = jnp.asarray(r.standard_normal((2, 8, 8, 8)), jnp.bfloat16)
    k = jnp.asarray(r.standard_normal((3, 3, 1, 8)), jnp.bfloat16)
    chex.assert_trees_all_close(F.depthwise_conv(x, k, impl="shift").astype(jnp.float32),
                                F.depthwise_conv(x, k, impl="xla").astype(jnp.float32),
                                atol=0.1, rtol=0.05)


def test_auto_policy_on_cpu_and_elsewhere(without_native):
    assert F.plan((8, 16, 16, 32), (3, 3, 1, 32), op="depthwise_conv").impl == "shift"
    assert F.plan((8, 16, 16, 32), (3, 3, 8, 32), feature_group_count=4).impl == "split"
    gpu = F.plan((8, 16, 16, 32), (3, 3, 8, 32), feature_group_count=4, backend="gpu")
    assert gpu.impl == "xla" and "no faster formulation is known" in gpu.reason
    # the 1x1 matmul row was measured on CPU only
    assert F.plan((8, 16, 16, 64), (1, 1, 64, 32)).impl == "matmul"
    assert F.plan((8, 16, 16, 64), (1, 1, 64, 32), backend="gpu").impl == "xla"
    # every CPU row's reason quotes the benchmark that justified it
    reason = F.plan((8, 16, 16, 32), (7, 7, 1, 32), op="depthwise_conv").reason
    assert "experiments/bench_ops.py" in reason and "at 7x7" in reason


def test_shift_and_split_refuse_what_they_cannot_express():
    with pytest.raises(ValueError, match=r"impl='shift' cannot express this conv: not depthwise"):
        F.conv(jnp.ones((1, 5, 5, 4)), jnp.ones((3, 3, 4, 4)), impl="shift")
    with pytest.raises(ValueError, match=r"impl='split' cannot express this conv: "
                                         r"feature_group_count=1"):
        F.conv(jnp.ones((1, 5, 5, 4)), jnp.ones((3, 3, 4, 4)), impl="split")


TRANSPOSED = [
    dict(x=(2, 5, 5, 4), k=(3, 3, 3, 4), strides=2, padding="SAME"),
    dict(x=(2, 5, 5, 4), k=(4, 4, 3, 4), strides=2, padding=1, output_padding=1),
    dict(x=(2, 5, 5, 4), k=(3, 3, 3, 4), strides=3, padding=3, output_padding=2),
    dict(x=(2, 5, 4, 4), k=(3, 2, 3, 4), strides=(2, 3), padding="VALID", groups=2),
    dict(x=(2, 7, 4), k=(5, 3, 4), strides=2, padding="CAUSAL"),
    dict(x=(2, 5, 5, 4), k=(1, 1, 3, 4), strides=3, padding="VALID"),
    dict(x=(1, 3, 4, 3, 2), k=(3, 3, 3, 2, 2), strides=2, padding=1, output_padding=(1, 0, 1)),
]


@pytest.mark.parametrize("cfg", TRANSPOSED, ids=range(len(TRANSPOSED)))
def test_subpixel_equals_xla(cfg):
    r = np.random.default_rng(3)
    x = jnp.asarray(r.standard_normal(cfg["x"]), jnp.float32)
    k = jnp.asarray(r.standard_normal(cfg["k"]), jnp.float32)

    def op(x, k, impl):
        return F.conv_transpose(x, k, strides=cfg["strides"], padding=cfg["padding"],
                                output_padding=cfg.get("output_padding"),
                                feature_group_count=cfg.get("groups", 1), impl=impl)

    _close_with_grads(op, "subpixel", x, k)


def test_transposed_policy(without_native):
    strided = F.plan((8, 16, 16, 64), (3, 3, 32, 64), op="conv_transpose", strides=2)
    assert strided.impl == "subpixel" and "experiments/bench_ops.py" in strided.reason
    assert F.plan((8, 16, 16, 64), (3, 3, 32, 64), op="conv_transpose").impl == "xla"
    dilated = F.plan((8, 16, 16, 64), (3, 3, 32, 64), op="conv_transpose", strides=2,
                     kernel_dilation=2)
    assert dilated.impl == "xla" and dilated.candidates["subpixel"] == "kernel_dilation=(2, 2)"


ROW_TAPS = [
    dict(kernel=3, strides=1, kernel_dilation=1, padding="SAME", height=6),
    dict(kernel=(3, 2), strides=(2, 1), kernel_dilation=1, padding="VALID", height=7),
    dict(kernel=3, strides=(1, 2), kernel_dilation=(2, 1), padding=((1, 3), (2, 0)), height=5),
    dict(kernel=2, strides=(3, 1), kernel_dilation=1, padding="REFLECT", height=7),
    # height 1 under SAME: the outer row taps read only padding and are left out
    dict(kernel=3, strides=1, kernel_dilation=1, padding="SAME", height=1),
    dict(kernel=5, strides=2, kernel_dilation=2, padding="CIRCULAR", height=9),
]


@pytest.mark.parametrize("cfg", ROW_TAPS, ids=range(len(ROW_TAPS)))
def test_row_taps_equals_xla(cfg):
    r = np.random.default_rng(4)
    kernel = cfg["kernel"] if isinstance(cfg["kernel"], tuple) else (cfg["kernel"],) * 2
    x = jnp.asarray(r.standard_normal((2, cfg["height"], 6, 3)), jnp.float32)
    k = jnp.asarray(r.standard_normal((*kernel, 3, 4)), jnp.float32)

    def op(x, k, impl):
        return F.conv(x, k, strides=cfg["strides"], padding=cfg["padding"],
                      kernel_dilation=cfg["kernel_dilation"], impl=impl)

    _close_with_grads(op, "row_taps", x, k)


@pytest.mark.parametrize(("isa", "xla_flags", "expected"), [
    ("avx2", "", "row_taps"),
    ("avx512", "", "canonical"),
    ("avx2", "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution", "canonical"),
])
def test_auto_dodges_ynnpack_convs_only_where_they_are_slow(isa, xla_flags, expected,
                                                           monkeypatch, without_native):
    from jaxconv.tuning import machine

    monkeypatch.setattr(machine, "isa", lambda: isa)
    monkeypatch.setenv("XLA_FLAGS", xla_flags)
    monkeypatch.setattr("jaxlib.version.__version__", "0.10.2")
    assert F.plan((8, 28, 28, 32), (3, 3, 32, 32)).impl == expected
    compiled = F.Compilation({machine.YNN_OPTION: "LIBRARY_FUSION_TYPE_REDUCE"})
    assert F.plan((8, 28, 28, 32), (3, 3, 32, 32), compilation=compiled).impl == "canonical"


CANONICAL = [
    dict(rank=1, kernel=5, strides=2, kernel_dilation=1, padding="CAUSAL", groups=1),
    dict(rank=2, kernel=3, strides=1, kernel_dilation=1, padding="SAME", groups=1),
    dict(rank=2, kernel=(3, 2), strides=(2, 3), kernel_dilation=(1, 2),
         padding=((2, 0), (1, 3)), groups=1),
    dict(rank=2, kernel=3, strides=2, kernel_dilation=1, padding="VALID", groups=3),
    dict(rank=3, kernel=(5, 3, 2), strides=(2, 1, 2), kernel_dilation=(1, 2, 1),
         padding=((0, 2), (2, 1), (1, 1)), groups=2),
    dict(rank=2, kernel=7, strides=1, kernel_dilation=1, padding="SAME", groups=1),
]


@pytest.mark.parametrize("cfg", CANONICAL, ids=range(len(CANONICAL)))
def test_canonical_equals_xla(cfg):
    r = np.random.default_rng(5)
    rank, g = cfg["rank"], cfg["groups"]
    kernel = cfg["kernel"] if isinstance(cfg["kernel"], tuple) else (cfg["kernel"],) * rank
    x = jnp.asarray(r.standard_normal((2, *(6,) * rank, 2 * g)), jnp.float32)
    k = jnp.asarray(r.standard_normal((*kernel, 2, 2 * g)), jnp.float32)

    def op(x, k, impl):
        return F.conv(x, k, strides=cfg["strides"], padding=cfg["padding"],
                      kernel_dilation=cfg["kernel_dilation"], feature_group_count=g, impl=impl)

    _close_with_grads(op, "canonical", x, k)


def test_canonical_gradients_stay_fast_inside_scan():
    """Inside a loop the gradient's convs are the channels-last forward convs, not autodiff's:
    no convolution with other dimension numbers appears in the compiled loop."""
    x, k = jnp.ones((4, 2, 8, 8, 3)), jnp.ones((3, 3, 3, 4))

    def loss(k, x):
        return jnp.sum(F.conv(x, k, strides=2, impl="canonical") ** 2)

    def steps(k, xs):
        return jax.lax.scan(lambda k, x: (k - 0.1 * jax.grad(loss)(k, x), None), k, xs)[0]

    hlo = jax.jit(steps).lower(k, x).compile().as_text()
    convs = [line for line in hlo.splitlines() if " convolution(" in line]
    assert convs and all("dim_labels=b01f_01io->b01f" in line for line in convs), convs


@pytest.mark.parametrize(("kernel_shape", "args"), [
    ((3, 3, 1, 4), dict(feature_group_count=4)), ((1, 1, 4, 6), {}),
    ((3, 3, 4, 6), dict(strides=2)), ((3, 3, 2, 6), dict(feature_group_count=2))])
def test_an_empty_batch_goes_through_every_formulation_with_gradients(kernel_shape, args):
    x, k = jnp.zeros((0, 8, 8, 4)), jnp.ones(kernel_shape)
    for impl in [*F.CONV, "auto"]:
        try:
            F.plan(x.shape, k.shape, impl=impl, **args)
        except ValueError:
            continue
        y = F.conv(x, k, impl=impl, **args)
        dx, dk = jax.grad(lambda a, b, i=impl: F.conv(a, b, impl=i, **args).sum(),
                          argnums=(0, 1))(x, k)
        assert y.shape[0] == 0 and dx.shape == x.shape, impl
        np.testing.assert_array_equal(dk, np.zeros(kernel_shape), err_msg=impl)
