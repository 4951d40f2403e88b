"""BatchNorm's channels summed by the native extension (policy version 4 on AVX-512 CPUs):
the same statistics and derivatives as the lax reductions of version 3, under every transform,
never in an export, and split over devices without gathering the batch."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import functional as F
from jaxconv.functional import channel_sums, policy
from jaxconv.tuning import machine, native

pytestmark = pytest.mark.native

needs_native_bn = pytest.mark.skipif(
    not (native.available() and machine.isa() == "avx512"),
    reason=str(native.reason() or f"native BatchNorm sums are policy rows for AVX-512 CPUs; "
                                  f"this one is {machine.isa()}"))

NATIVE, LAX = F.Compilation(policy_version=4), F.Compilation(policy_version=3)


def _operands(shape, seed=0):
    r = np.random.default_rng(seed)
    c = shape[-1]
    return (jnp.asarray(r.standard_normal(shape) * 2 + 0.5, jnp.float32),
            jnp.asarray(r.standard_normal(c), jnp.float32),
            jnp.asarray(r.standard_normal(c), jnp.float32))


def _bn(compilation):
    return lambda x, scale, bias: F.batch_norm(x, scale, bias, compilation=compilation)


def _loss(compilation):
    def loss(x, scale, bias):
        y, mean, var = _bn(compilation)(x, scale, bias)
        return jnp.sum(jnp.sin(y) * y) + jnp.sum(mean * var)
    return loss


def _close(a, b, tol=1e-4):
    chex.assert_trees_all_close(a, b, rtol=tol, atol=tol)


def _lowered(fn, *args) -> str:
    return jax.jit(fn).lower(*args).as_text()


@pytest.mark.parametrize("shape", [(6, 5), (4, 7, 9, 3), (64, 32, 32, 3), (2, 3, 4, 5, 6)])
def test_sums_equal_the_lax_reductions(shape):
    if not native.available():
        pytest.skip(str(native.reason()))
    a, b = _operands(shape)[0], _operands(shape, seed=1)[0]
    shift = jnp.linspace(-1.0, 1.0, shape[-1], dtype=jnp.float32)
    got = jax.jit(channel_sums.channel_sums)(a, b, shift)
    assert "jaxconv_channel_sums" in _lowered(channel_sums.channel_sums, a, b, shift)
    want = [np.sum(np.asarray(a, np.float64) * w, axis=tuple(range(len(shape) - 1)))
            for w in (1.0, np.asarray(b, np.float64) - np.asarray(shift, np.float64))]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-4 * np.sqrt(np.prod(shape)))


THREADS_PROBE = """
import jax, jax.numpy as jnp, numpy as np
from jaxconv.functional import channel_sums
r = np.random.default_rng(0)
a, b = (jnp.asarray(r.standard_normal((128, 28, 28, 16)) * 3 + 1, jnp.float32) for _ in "ab")
shift = jnp.linspace(-1.0, 1.0, 16, dtype=jnp.float32)
sums = jax.jit(channel_sums.channel_sums)(a, b, shift)
print(" ".join(np.asarray(s).tobytes().hex() for s in sums))
"""


def test_the_sums_are_the_same_bits_on_one_thread_and_on_several(probe):
    """The rows are summed in fixed blocks added in a fixed order, so a run repeats to the bit
    whatever OMP_NUM_THREADS says (oneDNN's and these sums' thread count)."""
    if not native.available():
        pytest.skip(str(native.reason()))
    outputs = {probe(THREADS_PROBE, OMP_NUM_THREADS=threads).strip()
               for threads in ("1", "2", "3")}
    assert len(outputs) == 1


def test_version_4_sums_natively_and_earlier_versions_keep_their_lax_reductions():
    x, scale, bias = _operands((8, 6, 6, 4))
    with pytest.raises(TypeError, match=r"batch_norm: compilation=4; expected a "
                                        r"jaxconv.functional.Compilation or None"):
        F.batch_norm(x, scale, bias, compilation=4)
    assert "jaxconv_channel_sums" not in _lowered(_bn(LAX), x, scale, bias)
    assert "jaxconv_channel_sums" not in _lowered(
        jax.grad(_loss(F.Compilation(policy_version=1)), argnums=(0, 1, 2)), x, scale, bias)
    assert policy.native_batch_norm(LAX, jnp.float32) is False
    assert policy.native_batch_norm(NATIVE, jnp.bfloat16) is False
    with pytest.raises(ValueError, match=r"batch_norm: Compilation\(policy_version=99\) is not"):
        policy.native_batch_norm(F.Compilation(policy_version=99), jnp.float32)
    expected = native.available() and machine.isa() == "avx512"
    assert policy.native_batch_norm(NATIVE, jnp.float32) is expected
    text = _lowered(jax.grad(_loss(NATIVE), argnums=(0, 1, 2)), x, scale, bias)
    # forward statistics and the backward's reductions
    assert text.count("jaxconv_channel_sums") == (2 if expected else 0)


@needs_native_bn
@pytest.mark.parametrize("shape", [(16, 5), (8, 9, 9, 6), (4, 3, 5, 4, 8)])
def test_values_and_every_derivative_equal_the_lax_path(shape):
    """The native path against the lax one, each compiled whole (the lax reference op by op
    compiled about 140 small programs per shape)."""
    x, scale, bias = _operands(shape)
    ours, ref = _loss(NATIVE), _loss(LAX)
    _close(jax.jit(_bn(NATIVE))(x, scale, bias), jax.jit(_bn(LAX))(x, scale, bias))
    _close(jax.jit(jax.grad(ours, argnums=(0, 1, 2)))(x, scale, bias),
           jax.jit(jax.grad(ref, argnums=(0, 1, 2)))(x, scale, bias))
    tangents = _operands(shape, seed=1)
    _close(jax.jit(lambda *a: jax.jvp(_bn(NATIVE), a, tangents))(x, scale, bias),
           jax.jit(lambda *a: jax.jvp(_bn(LAX), a, tangents))(x, scale, bias))
    # second order, reverse over reverse and forward over reverse
    _close(jax.jit(jax.hessian(ours, argnums=1))(x, scale, bias),
           jax.jit(jax.hessian(ref, argnums=1))(x, scale, bias), 1e-3)

    def grad_norm(loss):
        return lambda x, s, b: jnp.sum(jax.grad(loss)(x, s, b) ** 2)

    _close(jax.jit(jax.grad(grad_norm(ours), argnums=(0, 1)))(x, scale, bias),
           jax.jit(jax.grad(grad_norm(ref), argnums=(0, 1)))(x, scale, bias), 1e-3)


def test_expands_tangent_in_the_mean_alone_has_the_shape_of_x():
    x, p, q = _operands((4, 3, 5))
    inv, dmean = jnp.abs(q) + 0.5, jnp.linspace(-1.0, 1.0, 5, dtype=jnp.float32)
    # only the mean varies: every other tangent is a symbolic zero
    got = jax.jvp(lambda mean: channel_sums.expand(p, q, x, mean, inv), (p,), (dmean,))[1]
    assert got.shape == x.shape
    _close(got, jax.jvp(lambda mean: channel_sums._lax_expand(p, q, x, mean, inv), (p,),
                        (dmean,))[1])


@needs_native_bn
def test_vmap_normalises_each_mapped_batch_on_its_own():
    x, scale, bias = _operands((5, 8, 7, 7, 6))
    scales = jnp.stack([scale * (i + 1) for i in range(5)])
    for axes in ((0, None, None), (0, 0, None), (0, 0, 0)):
        args = (x, scales, jnp.stack([bias] * 5)) if axes[2] is not None else (x, scales, bias)
        args = args if axes[1] is not None else (x, scale, bias)
        _close(jax.jit(jax.vmap(_bn(NATIVE), in_axes=axes))(*args),
               jax.vmap(_bn(LAX), in_axes=axes)(*args))
        # per-example gradients
        _close(jax.jit(jax.vmap(jax.grad(_loss(NATIVE), argnums=(0, 1, 2)), in_axes=axes))(*args),
               jax.vmap(jax.grad(_loss(LAX), argnums=(0, 1, 2)), in_axes=axes)(*args))


@needs_native_bn
def test_exports_hold_lax_reductions_only():
    x, scale, bias = _operands((8, 6, 6, 4))
    step = jax.jit(jax.grad(_loss(NATIVE), argnums=(0, 1, 2)))
    exported = jax.export.export(step)(x, scale, bias)
    assert "jaxconv_channel_sums" not in exported.mlir_module()
    _close(exported.call(x, scale, bias), step(x, scale, bias))


SHARDED_PROBE = """
import re
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from jaxconv import functional as F

mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
r = np.random.default_rng(0)
x = (r.standard_normal((16, 6, 6, 6)) * 2 + 1).astype(np.float32)   # 6 channels on 4 devices
scale, bias = (r.standard_normal(6).astype(np.float32) for _ in range(2))

def loss(version):
    def net(x, scale, bias):
        y, mean, var = F.batch_norm(x, scale, bias,
                                    compilation=F.Compilation(policy_version=version))
        return jnp.mean(jnp.tanh(y) ** 2)
    return net

step = jax.jit(jax.value_and_grad(loss(4), argnums=(0, 1, 2)))
args = (jax.device_put(x, NamedSharding(mesh, PartitionSpec("data"))),
        jax.device_put(scale, NamedSharding(mesh, PartitionSpec())),
        jax.device_put(bias, NamedSharding(mesh, PartitionSpec())))
got = step(*args)
want = jax.value_and_grad(loss(3), argnums=(0, 1, 2))(x, scale, bias)
for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
hlo = step.lower(*args).compile().as_text()
print("gathers", len(re.findall(r" all-gather(-start)?\\(", hlo)))
print("native", len(re.findall(r"jaxconv_channel_sums", hlo)))
print("sharded", tuple(got[1][0].sharding.spec))

# a mesh of explicit axes: the sums are whole on every device, whatever split the batch
explicit = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Explicit,))
with jax.sharding.set_mesh(explicit):
    args = (jax.device_put(x, NamedSharding(explicit, PartitionSpec("data"))), scale, bias)
    got = jax.jit(jax.value_and_grad(loss(4), argnums=(0, 1, 2)))(*args)
for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
print("explicit", tuple(got[1][1].sharding.spec))

# one row of channels in a program on four devices: no batch axis to split, the plain handler
from jaxconv.functional.channel_sums import channel_sums
v = jax.device_put(scale, NamedSharding(mesh, PartitionSpec()))
one_row = jax.jit(lambda v: channel_sums(v, 2 * v, jnp.zeros_like(v)))
s1, s2 = one_row(v)
np.testing.assert_allclose(s1, scale, rtol=1e-6)
np.testing.assert_allclose(s2, 2 * scale * scale, rtol=1e-6)
print("one_row", len(s1.sharding.device_set),
      "jaxconv_channel_sums" in one_row.lower(v).compile().as_text())
"""


@needs_native_bn
def test_a_four_device_batch_sums_its_parts_where_they_are(four_devices):
    """Batch split over four devices: each sums its own rows natively and the parts are added
    across devices; nothing is gathered, the input gradient stays split, and the numbers are
    the one-device lax ones."""
    facts = four_devices(SHARDED_PROBE)
    assert facts["gathers"] == "0"
    assert int(facts["native"]) >= 2
    assert facts["sharded"] == "('data',)"
    assert facts["explicit"] == "(None,)"
    assert facts["one_row"] == "4 True"
