"""The formulation primitives at the edges of JAX's machinery: ``jax.disable_jit``,
`jax.shard_map` (manual axes), vmap over an empty axis, a symbolic batch in a gradient, the
depthwise backward's single loop and its one-operand paths, and bf16 gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec

from jaxconv import functional as F
from jaxconv.functional.formulations import depthwise_taps

R = np.random.default_rng(0)
X = jnp.asarray(R.standard_normal((4, 6, 6, 4)), jnp.float32)
OPS = {
    "canonical": (lambda x, k: F.conv(x, k, impl="canonical"), (3, 3, 4, 5)),
    "matmul": (lambda x, k: F.pointwise(x, k, impl="matmul"), (4, 5)),
    "shift": (lambda x, k: F.depthwise_conv(x, k, impl="shift"), (3, 3, 1, 8)),
}
XLA = {
    "canonical": lambda x, k: F.conv(x, k, impl="xla"),
    "matmul": lambda x, k: F.pointwise(x, k, impl="xla"),
    "shift": lambda x, k: F.depthwise_conv(x, k, impl="xla"),
}


def _kernel(name):
    return jnp.asarray(R.standard_normal(OPS[name][1]) * 0.3, jnp.float32)


@pytest.mark.parametrize("name", sorted(OPS))
def test_runs_with_jit_disabled(name):
    op, k = OPS[name][0], _kernel(name)
    with jax.disable_jit():
        got = op(X, k)
        grads = jax.grad(lambda x, k: jnp.sum(op(x, k) ** 2), argnums=(0, 1))(X, k)
    chex.assert_trees_all_close(got, XLA[name](X, k), atol=1e-5, rtol=1e-5)
    chex.assert_trees_all_close(
        grads, jax.grad(lambda x, k: jnp.sum(XLA[name](x, k) ** 2), argnums=(0, 1))(X, k),
        atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(OPS))
def test_shard_map_tracks_the_varying_batch_like_lax(name):
    """Inside `jax.shard_map` the batch varies over the mesh axis and the kernel does not: the
    output varies (a replicated out_spec is refused, as for lax's conv) and the kernel
    gradient is summed over the devices."""
    op, k = OPS[name][0], _kernel(name)
    mesh = jax.make_mesh((1,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))
    data, whole = PartitionSpec("d"), PartitionSpec()

    def sharded(fn, out_specs):
        return jax.shard_map(fn, mesh=mesh, in_specs=(data, whole), out_specs=out_specs)

    chex.assert_trees_all_close(sharded(op, data)(X, k), XLA[name](X, k), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="out_specs"):
        sharded(op, whole)(X, k)

    def loss(fn):
        return sharded(lambda x, k: jax.lax.psum(jnp.sum(fn(x, k) ** 2), "d"), whole)

    chex.assert_trees_all_close(jax.grad(loss(op), argnums=1)(X, k),
                                jax.grad(loss(XLA[name]), argnums=1)(X, k), atol=1e-3,
                                rtol=1e-4)


@pytest.mark.parametrize("name", sorted(OPS))
def test_vmap_over_an_empty_axis(name):
    op, k = OPS[name][0], _kernel(name)
    empty = jnp.zeros((0, *X.shape))
    assert jax.vmap(lambda x: op(x, k))(empty).shape == jax.vmap(
        lambda x: XLA[name](x, k))(empty).shape


@pytest.mark.parametrize("name", sorted(OPS))
def test_a_gradient_exports_with_a_symbolic_batch(name):
    op, k = OPS[name][0], _kernel(name)

    def grads(x, k):
        return jax.grad(lambda x, k: jnp.sum(op(x, k) ** 2), argnums=(0, 1))(x, k)

    (batch,) = jax.export.symbolic_shape("b")
    exported = jax.export.export(jax.jit(grads))(
        jax.ShapeDtypeStruct((batch, *X.shape[1:]), X.dtype), k)
    chex.assert_trees_all_close(exported.call(X, k), grads(X, k), atol=1e-4, rtol=1e-4)


def _chunked(monkeypatch):
    monkeypatch.setattr(depthwise_taps, "CHUNK_BYTES", 1)     # one image per loop step


def test_the_depthwise_backward_is_one_loop_for_both_gradients(monkeypatch):
    _chunked(monkeypatch)
    op, k = OPS["shift"][0], _kernel("shift")
    grads = jax.jit(jax.grad(lambda x, k: jnp.sum(op(x, k) ** 2), argnums=(0, 1)))
    assert grads.lower(X, k).as_text().count("stablehlo.while") == 1


@pytest.mark.parametrize("argnums", [0, 1], ids=["input_only", "kernel_only"])
def test_the_chunked_depthwise_backward_of_one_operand(argnums, monkeypatch):
    _chunked(monkeypatch)
    k = _kernel("shift")
    for shards in (1, 2):
        sharded = F.Compilation(batch_shards=shards)

        def loss(x, k, compilation=sharded):
            return jnp.sum(F.depthwise_conv(x, k, impl="shift", compilation=compilation) ** 2)

        chex.assert_trees_all_close(
            jax.jit(jax.grad(loss, argnums=argnums))(X, k),
            jax.grad(lambda x, k: jnp.sum(XLA["shift"](x, k) ** 2), argnums=argnums)(X, k),
            atol=1e-3, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(OPS))
def test_bfloat16_gradients_keep_their_operands_dtype(name):
    op, k = OPS[name][0], _kernel(name).astype(jnp.bfloat16)
    x = X.astype(jnp.bfloat16)
    dx, dk = jax.grad(lambda x, k: jnp.sum(op(x, k).astype(jnp.float32) ** 2),
                      argnums=(0, 1))(x, k)
    tangent = jax.jvp(op, (x, k), (x, k))[1]
    assert dx.dtype == dk.dtype == tangent.dtype == jnp.bfloat16
