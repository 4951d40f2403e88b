"""`summary`, `explain` and the CLI against hand counts."""

import math

import jax.numpy as jnp
import pytest
from flax import nnx

import jaxconv as jc
from jaxconv.analysis import explain, summary
from jaxconv.cli import main
from tests import modules


class ThreeLayers(nnx.Module):
    """The three layers of tests/test_channel_semantics.py, side by side."""

    def __init__(self):
        self.conv = jc.nnx.Conv(3, 32, (3, 3), rngs=nnx.Rngs(0))
        self.conv3d = jc.nnx.Conv(3, 32, (3, 3, 3), rngs=nnx.Rngs(0))
        self.pointwise = jc.nnx.Conv(32, 8, (1, 1), rngs=nnx.Rngs(0))

    def __call__(self, x):
        y = self.conv(x)
        z = self.conv3d(x[:, None])
        return self.pointwise(y) + z[:, 0, :, :, :8]


def test_summary_matches_hand_counts(monkeypatch):
    from jaxconv.tuning import native

    monkeypatch.setattr(native, "available", lambda: False)    # the lax formulations' picks
    s = summary(ThreeLayers(), (64, 64, 3))
    rows = {r.path: r for r in s.rows}
    assert [r.params for r in s.rows] == [896, 2624, 264]
    conv, conv3d, point = rows["conv"], rows["conv3d"], rows["pointwise"]
    assert conv.macs == 64 * 64 * 32 * 27
    assert conv3d.macs == 64 * 64 * 32 * 81
    assert point.macs == 64 * 64 * 8 * 32
    assert (conv.output_shape, conv3d.output_shape) == ((1, 64, 64, 32), (1, 1, 64, 64, 32))
    # the summary reports what auto picks on CPU: a 3x3 conv on RGB reads 27 values per pixel
    assert point.impl == "matmul" and conv.impl == "patches" and conv3d.impl == "depth_taps"
    assert conv.activation_bytes == 64 * 64 * 32 * 4
    # XLA counts only in-bounds taps (2 per multiply-add) plus the bias add: fewer than
    # 2 x textbook MACs on a padded border, and never more than that plus one add per output.
    assert 2 * 62 * 62 * 32 * 27 < conv.xla_flops <= 2 * conv.macs + 64 * 64 * 32
    # depth 1 with SAME: only a third of the 3-D kernel ever touches data.
    assert conv3d.xla_flops < 2 * conv3d.macs / 2
    assert point.xla_flops == 2 * point.macs + 64 * 64 * 8
    assert s.params == 896 + 2624 + 264
    assert "MACs: textbook count" in s.table()


def test_summary_totals_without_the_per_layer_lowerings_are_the_same():
    full = summary(ThreeLayers(), (64, 64, 3))
    totals = summary(ThreeLayers(), (64, 64, 3), layer_xla_flops=False)
    assert (totals.params, totals.macs, totals.xla_flops, totals.activation_bytes) == \
        (full.params, full.macs, full.xla_flops, full.activation_bytes)
    assert [r.macs for r in totals.rows] == [r.macs for r in full.rows]
    assert all(math.isnan(r.xla_flops) for r in totals.rows)


def test_summary_leaves_the_model_in_train_mode(monkeypatch):
    from jaxconv.tuning import native

    monkeypatch.setattr(native, "available", lambda: False)    # the lax formulations' picks
    model = modules.build(lambda rngs: jc.models.create("bottleneck-0.1m", num_classes=10,
                                                        in_features=1, rngs=rngs))
    before = model.stem.norm.use_running_average
    s = summary(model, (28, 28, 1))
    assert model.stem.norm.use_running_average == before
    assert s.params == jc.models.ConvNet.param_count(jc.models.spec("bottleneck-0.1m"),
                                                     num_classes=10, in_features=1)
    assert {r.impl for r in s.rows if r.layer == "Pointwise"} == {"matmul"}


@pytest.mark.skipif(not __import__("jaxconv.tuning.native", fromlist=["x"]).available(),
                    reason="the onednn rows need the native extension")
def test_summary_names_the_native_formulation_where_auto_picks_it(monkeypatch):
    from jaxconv.tuning import machine

    monkeypatch.setattr(machine, "isa", lambda: "avx512")
    model = modules.build(lambda rngs: jc.models.create("bottleneck-0.1m", num_classes=10,
                                                        in_features=1, rngs=rngs))
    rows = {(r.input_shape, r.kernel_shape): r.impl for r in summary(model, (28, 28, 1)).rows
            if r.layer == "Pointwise"}
    assert rows[(1, 14, 14, 44), (44, 11)] == "onednn"     # narrows onto 14x14
    assert rows[(1, 7, 7, 22), (22, 88)] == "matmul"       # widens on a 7x7 map


@pytest.mark.parametrize(("kind", "shape", "kwargs", "params"), [
    ("conv2d", (64, 64, 3), dict(filters=32, kernel=3), 896),
    ("conv3d", (1, 64, 64, 3), dict(filters=32, kernel=3), 2624),
    ("pointwise", (64, 64, 32), dict(filters=8), 264),
])
def test_explain_counts(kind, shape, kwargs, params):
    assert explain(kind, shape, **kwargs).params == params


def test_explain_depthwise_and_separable_compare_with_dense():
    e = explain("separable", (32, 32, 64), filters=128)
    assert e.params == 9 * 64 + 64 * 128 + 128
    assert "Against a dense 3x3 conv 64->128 (73,856 parameters" in e.text
    d = explain("depthwise", (32, 32, 64), strides=2)
    assert d.output_shape == (16, 16, 64) and d.params == 9 * 64 + 64


@pytest.mark.parametrize(("argv", "expected"), [
    (["explain", "conv2d", "--input", "64x64x3", "--filters", "32", "--kernel", "3x3"],
     ["= 896.", "How 3 channels become 32", "96 2-D slices"]),
    (["explain", "pointwise", "--input", "64x64x32", "--filters", "8"],
     ["= 264.", "Rank bound", "keep at most 8 directions"]),
    (["explain", "conv3d", "--input", "1x64x64x3", "--filters", "32", "--kernel", "3"],
     ["= 2,624.", "only kernel index 1 of 3"]),
])
def test_cli_explain(capsys, argv, expected):
    assert main(argv) == 0
    out = capsys.readouterr().out
    for text in expected:
        assert text in out


def test_cli_summary_and_errors(capsys):
    assert main(["summary", "--model", "fire-0.1m", "--input", "28x28x1"]) == 0
    out = capsys.readouterr().out
    assert "fire-0.1m on 28x28x1" in out and "total" in out
    assert main(["summary", "--model", "fire-9m", "--input", "28x28x1"]) == 2
    assert "preset 'fire-9m' does not exist" in capsys.readouterr().err
    assert main(["explain", "conv2d", "--input", "8x8x3", "--filters", "4", "--groups", "2"]) == 2
    assert "feature_group_count=2 does not divide the input's 3 channels" in \
        capsys.readouterr().err


def test_summary_of_a_transposed_conv():
    class Up(nnx.Module):
        def __init__(self):
            self.up = jc.nnx.ConvTranspose(8, 4, (3, 3), strides=2, rngs=nnx.Rngs(0))

        def __call__(self, x):
            return self.up(x)

    row = summary(Up(), (5, 5, 8)).rows[0]
    assert row.output_shape == (1, 10, 10, 4) and row.macs == 5 * 5 * 8 * 9 * 4
    assert jnp.dtype("float32").itemsize * 400 == row.activation_bytes


def test_summary_patches_no_class_while_it_records():
    from jaxconv import nnx as jnn
    from jaxconv.analysis import summary

    original, seen = jnn.Conv.__call__, []

    class Probe(nnx.Module):
        def __init__(self):
            self.conv = jnn.Conv(1, 2, (3, 3), rngs=nnx.Rngs(0))

        def __call__(self, x):
            seen.append(jnn.Conv.__call__ is original)
            return self.conv(x)

    rows = summary(Probe(), (8, 8, 1)).rows
    assert [r.path for r in rows] == ["conv"] and rows[0].output_shape == (1, 8, 8, 2)
    assert seen and all(seen)
