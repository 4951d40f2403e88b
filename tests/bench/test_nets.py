"""The benchmark's nets are the same architecture in every framework, and their step trains."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv import nnx as jnnx
from jaxconv.bench import nets, train_step


@pytest.mark.parametrize("name", sorted(nets.NETS))
def test_jaxconv_and_flax_nets_have_the_same_parameters_and_outputs(name):
    ours = nets.Net(name, jnnx.Conv, rngs=nnx.Rngs(0))
    theirs = nets.Net(name, nnx.Conv, rngs=nnx.Rngs(0))
    chex.assert_trees_all_equal(nnx.state(ours, nnx.Param), nnx.state(theirs, nnx.Param))
    ours.eval()
    theirs.eval()
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 28, 28, 1)), jnp.float32)
    forward = nnx.jit(lambda net: net(x))
    chex.assert_trees_all_close(forward(ours), forward(theirs), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(nets.NETS))
def test_pytorch_twin_is_the_same_function(name):
    torch = pytest.importorskip("torch")
    from jaxconv.interop import torch as interop

    torch.manual_seed(0)
    twin = nets.torch_net(name)
    for module in twin.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
    twin.eval()
    model = interop.load(nets.Net(name, jnnx.Conv, rngs=nnx.Rngs(0)), twin)
    model.eval()
    assert nets.param_count(twin) == nets.param_count(model)
    x = np.random.default_rng(0).standard_normal((2, 28, 28, 1)).astype(np.float32)
    want = twin(torch.from_numpy(np.moveaxis(x, -1, 1).copy())).detach().numpy()
    chex.assert_trees_all_close(np.asarray(model(jnp.asarray(x))), want, atol=1e-4, rtol=1e-4)


def test_jax_step_updates_parameters_and_lowers_the_loss_on_a_fixed_batch():
    model = nets.Net("mobilenet_v2", jnnx.Conv, rngs=nnx.Rngs(0))
    before = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    run = train_step.jax_step(model, lr=0.05)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((8, 28, 28, 1)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, 8), jnp.int32)
    losses = [float(run(x, y)) for _ in range(6)]
    assert losses[-1] < losses[0]
    # the step works on copies: the model it was built from keeps its parameters
    chex.assert_trees_all_equal(jax.tree.map(np.asarray, nnx.state(model, nnx.Param)), before)


def test_unknown_net_is_refused_with_the_valid_names():
    from jaxconv import bench

    with pytest.raises(ValueError, match="resnet_bottleneck, mobilenet_v2"):
        list(bench.report(nets=["resnet50"]))


def test_cli_bench_prints_the_op_table_with_versions_and_settings(capfd):
    from jaxconv.cli import main

    assert main(["bench", "--settings", "recommended", "--repeats", "1", "--cases", "1-D",
                 "--no-steps"]) == 0
    out = capfd.readouterr().out
    assert "# conv benchmark:" in out and "XLA_FLAGS=" in out and "GLIBC_TUNABLES=" in out
    row = next(line for line in out.splitlines() if line.startswith("| 1-D k=5"))
    assert len(row.split("|")) == 12


def test_cli_bench_names_a_bad_net(capfd):
    from jaxconv.cli import main

    assert main(["bench", "--settings", "none", "--no-ops", "--nets", "vgg"]) == 2
    err = capfd.readouterr().err
    assert "nets=['vgg']: expected names from resnet_bottleneck, mobilenet_v2" in err


@pytest.mark.slow
def test_the_op_table_has_the_onednn_column():
    """Where the extension is built, each case onednn expresses shows its time; else a dash."""
    from jaxconv.bench import ops
    from jaxconv.tuning import native

    _, _, columns, _, row = ops.table(1, ["stem"])
    names = [c.strip() for c in columns.split("|")[1:-1]]
    cell = [c.strip() for c in row.split("|")[1:-1]][names.index("onednn fwd+bwd")]
    assert (cell != "-") is native.available()
    if native.available():
        float(cell)
