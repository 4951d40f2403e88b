"""Every formulation and every public op and layer works under every JAX transform by default,
with no context manager: ``jit``, ``grad``, ``jvp``, ``jacfwd``, ``jacrev``, ``linearize``,
``hessian`` and ``vmap``, in any order, agreeing with ``impl="xla"`` (plain
`lax.conv_general_dilated` and JAX's own rules); and each lowers for GPU and TPU through
`jax.export` on this CPU machine.

The order-2 grid over every formulation is marked ``slow``."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv import functional as F
from jaxconv import nnx as jnn
from jaxconv.tuning import native

R = np.random.default_rng(0)


def _array(shape, scale=1.0):
    return jnp.asarray(R.standard_normal(shape) * scale, jnp.float32)


#: name -> (op(x, k, impl), x shape, kernel shape, formulation that computes it)
CASES = {
    "canonical_2d": (lambda x, k, impl: F.conv(x, k, strides=(2, 1), impl=impl),
                     (2, 5, 5, 6), (3, 3, 6, 4), "canonical"),
    "canonical_1d": (lambda x, k, impl: F.conv(x, k, padding="CAUSAL", kernel_dilation=2,
                                               impl=impl), (2, 7, 3), (3, 3, 4), "canonical"),
    "matmul": (lambda x, k, impl: F.pointwise(x, k, strides=(2, 2), impl=impl),
               (2, 5, 5, 6), (6, 4), "matmul"),
    "matmul_grouped": (lambda x, k, impl: F.pointwise(x, k, feature_group_count=2, impl=impl),
                       (2, 3, 3, 6), (3, 4), "matmul"),
    "shift": (lambda x, k, impl: F.depthwise_conv(x, k, strides=2, impl=impl),
              (2, 5, 5, 3), (3, 3, 1, 6), "shift"),
    "patches": (lambda x, k, impl: F.conv(x, k, impl=impl), (2, 5, 5, 1), (3, 3, 1, 4),
                "patches"),
    "split": (lambda x, k, impl: F.conv(x, k, feature_group_count=2, impl=impl),
              (2, 4, 4, 4), (3, 3, 2, 4), "split"),
    "row_taps": (lambda x, k, impl: F.conv(x, k, padding=1, impl=impl), (2, 4, 5, 3),
                 (3, 3, 3, 4), "row_taps"),
    "depth_taps": (lambda x, k, impl: F.conv(x, k, impl=impl), (1, 3, 4, 4, 2),
                   (3, 3, 3, 2, 3), "depth_taps"),
    "subpixel": (lambda x, k, impl: F.conv_transpose(x, k, strides=2, impl=impl),
                 (2, 3, 3, 4), (3, 3, 2, 4), "subpixel"),
    "onednn": (lambda x, k, impl: F.conv(x, k, strides=(2, 1), padding=((1, 0), (2, 1)),
                                         feature_group_count=2, impl=impl),
               (2, 5, 6, 4), (3, 2, 2, 6), "onednn"),
}


def _operands(name):
    _, x_shape, k_shape, _ = CASES[name]
    return _array(x_shape), _array(k_shape, 0.3)


def _pair(name):
    op, _, _, impl = CASES[name]
    if impl == "onednn" and not native.available():
        pytest.skip(native.reason())
    # the reference is compiled whole under every transform (op by op, its second derivatives
    # took most of this file's time)
    return (lambda x, k: op(x, k, impl)), jax.jit(lambda x, k: op(x, k, "xla"))


def _close(a, b, tol=2e-4):
    chex.assert_trees_all_close(a, b, atol=tol, rtol=tol)


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_order_transforms_agree_with_xla(name):
    ours, ref = _pair(name)
    x, k = _operands(name)
    dx, dk = _array(x.shape), _array(k.shape)
    jitted = jax.jit(ours)
    _close(jitted(x, k), ref(x, k))        # traced and compiled before it is differentiated
    _close(jax.jvp(jitted, (x, k), (dx, dk)), jax.jvp(ref, (x, k), (dx, dk)))
    _close(jax.jit(lambda t: jax.jvp(ours, (x, k), (t, dk)))(dx),
           jax.jvp(ref, (x, k), (dx, dk)))
    y, lin = jax.linearize(jitted, x, k)
    _close((y, lin(dx, dk)), jax.jvp(ref, (x, k), (dx, dk)))

    def loss(fn):
        return lambda x, k: jnp.sum(fn(x, k) ** 2)

    _close(jax.grad(loss(jitted), argnums=(0, 1))(x, k),
           jax.grad(loss(ref), argnums=(0, 1))(x, k), 1e-3)
    _close(jax.jacfwd(ours, argnums=1)(x, k), jax.jacrev(ref, argnums=1)(x, k))
    xs, ks = jnp.stack([x, -x]), jnp.stack([k, 2 * k])
    _close(jax.vmap(ours)(xs, ks), jax.vmap(ref)(xs, ks))
    _close(jax.vmap(ours, in_axes=(0, None))(xs, k), jax.vmap(ref, in_axes=(0, None))(xs, k))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_second_order_derivatives_agree_with_xla(name):
    ours, ref = _pair(name)
    x, k = _operands(name)

    def loss(fn):
        return lambda x, k: jnp.sum(jnp.tanh(fn(x, k)) ** 2)

    for argnums in (0, 1):
        _close(jax.jit(jax.hessian(loss(ours), argnums=argnums))(x, k),
               jax.jit(jax.hessian(loss(ref), argnums=argnums))(x, k), 1e-3)
    # reverse over reverse, and the mixed x-k block, from a jitted first derivative
    grad = jax.jit(jax.grad(loss(ours), argnums=0))
    grad(x, k)
    _close(jax.jacrev(grad, argnums=1)(x, k),
           jax.jit(jax.jacrev(jax.grad(loss(ref), argnums=0), argnums=1))(x, k), 1e-3)


def test_every_formulation_is_covered():
    """Each formulation with a name is exercised above (besides the reference)."""
    covered = {case[3] for case in CASES.values()}
    assert covered == (set(F.CONV) | set(F.TRANSPOSE)) - {"xla"}


#: name -> (the layer from its Rngs, the input shape); each test builds only its own layer.
LAYERS = {
    "Conv": (lambda rngs: jnn.Conv(3, 4, (3, 3), rngs=rngs), (2, 6, 6, 3)),
    "Conv1d": (lambda rngs: jnn.Conv(3, 4, 3, rngs=rngs), (2, 7, 3)),
    "Conv3d_stem": (lambda rngs: jnn.Conv(1, 4, (3, 3, 3), rngs=rngs), (1, 4, 4, 4, 1)),
    "Pointwise": (lambda rngs: jnn.Pointwise(6, 4, rngs=rngs), (2, 4, 4, 6)),
    "DepthwiseConv": (lambda rngs: jnn.DepthwiseConv(4, (3, 3), rngs=rngs), (2, 5, 5, 4)),
    "SeparableConv": (lambda rngs: jnn.SeparableConv(4, 6, (3, 3), rngs=rngs), (2, 5, 5, 4)),
    "ConvTranspose": (lambda rngs: jnn.ConvTranspose(4, 3, (3, 3), strides=2, rngs=rngs),
                      (2, 3, 3, 4)),
    "BatchNorm": (lambda rngs: jnn.BatchNorm(4, rngs=rngs), (6, 3, 3, 4)),
}


def _layer(name):
    make, shape = LAYERS[name]
    return make(nnx.Rngs(0)), shape


def _as_function(layer):
    graphdef, state = nnx.split(layer)

    def apply(state, x):
        return nnx.merge(graphdef, state)(x)

    return apply, state


@pytest.mark.parametrize("name", sorted(set(LAYERS) - {"BatchNorm"}))
def test_layers_with_default_impl_support_forward_mode_like_xla(name):
    """The default ``impl`` of each conv layer against the same layer with ``impl="xla"``
    (BatchNorm's forward mode against Flax's: tests/nnx/test_norm.py)."""
    layer, shape = _layer(name)
    reference = nnx.clone(layer)
    reference.impl = "xla"
    x, tangent = _array(shape), _array(shape)
    apply, state = _as_function(layer)
    apply_ref, state_ref = _as_function(reference)
    apply_ref = jax.jit(apply_ref)
    jitted = jax.jit(apply)
    jitted(state, x)
    _close(jax.jvp(lambda x: jitted(state, x), (x,), (tangent,)),
           jax.jvp(lambda x: apply_ref(state_ref, x), (x,), (tangent,)))
    _close(jax.jacfwd(lambda x: jitted(state, x))(x[:1]),
           jax.jit(jax.jacrev(lambda x: apply_ref(state_ref, x)))(x[:1]))
    primal, lin = jax.linearize(lambda x: apply(state, x), x)
    _close((primal, lin(tangent)),
           jax.jvp(lambda x: apply_ref(state_ref, x), (x,), (tangent,)))

    def scalar(fn, s):
        return lambda x: jnp.sum(jnp.tanh(fn(s, x)) ** 2)

    # under jit for every layer (op by op, its few hundred small programs took 3.5-5 s to
    # compile per layer) and op by op for the 1-D conv alone
    hessian = jax.hessian(scalar(apply, state))
    _close((hessian if name == "Conv1d" else jax.jit(hessian))(x[:1]),
           jax.jit(jax.hessian(scalar(apply_ref, state_ref)))(x[:1]), 1e-3)


@pytest.mark.parametrize("name", sorted(CASES))
def test_formulations_lower_for_gpu_and_tpu(name):
    """Each formulation, forward and both gradients, exports for CUDA and TPU from this CPU
    machine: plain StableHLO, no host-only custom call."""
    ours, _ = _pair(name)
    x, k = _operands(name)

    def step(x, k):
        return jax.value_and_grad(lambda x, k: jnp.sum(ours(x, k) ** 2), argnums=(0, 1))(x, k)

    exported = jax.export.export(jax.jit(step), platforms=("cuda", "tpu"))(x, k)
    assert exported.platforms == ("cuda", "tpu")
    assert "custom_call" not in exported.mlir_module()


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_lower_for_gpu_and_tpu(name):
    layer, shape = _layer(name)
    apply, state = _as_function(layer)
    exported = jax.export.export(jax.jit(apply), platforms=("cuda", "tpu"))(
        state, jnp.zeros(shape, jnp.float32))
    assert "custom_call" not in exported.mlir_module()


@pytest.mark.parametrize("name", sorted(CASES))
def test_formulations_take_a_symbolic_batch(name):
    """Exported with a symbolic batch (`jax.export` shape polymorphism), each formulation runs
    any batch, with the values of a fixed-batch call."""
    ours, _ = _pair(name)
    x, k = _operands(name)
    (batch,) = jax.export.symbolic_shape("b")
    exported = jax.export.export(jax.jit(ours))(
        jax.ShapeDtypeStruct((batch, *x.shape[1:]), x.dtype), k)
    many = jnp.concatenate([x, x, x])
    _close(exported.call(many, k), ours(many, k))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layers_take_a_symbolic_batch(name):
    layer, shape = _layer(name)
    layer.eval()
    apply, state = _as_function(layer)
    (batch,) = jax.export.symbolic_shape("b")
    exported = jax.export.export(jax.jit(apply))(
        state, jax.ShapeDtypeStruct((batch, *shape[1:]), jnp.float32))
    x = _array((5, *shape[1:]))
    _close(exported.call(state, x), apply(state, x))
