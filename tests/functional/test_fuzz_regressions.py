"""Configurations that once broke a formulation, each run in a child process: a compiler abort
becomes a failing test that names it instead of ending the test run.

XLA's CPU compiler aborts the process (``algebraic_simplifier.cc: Window dimensions do not match
RHS shape``) on this lax-only program, jaxlib 0.10.2: an input-dilated conv whose reversed
window exceeds its input, which XLA rewrites with the operands swapped::

    dy, k = jnp.ones((2, 2, 5, 4, 2)), jnp.ones((5, 3, 2, 2, 2))
    jax.jit(lambda a, b: lax.conv_general_dilated(
        a, jnp.flip(b, (0, 1, 2)), (1, 1, 1), ((4, 3), (2, 3), (0, 0)),
        lhs_dilation=(2, 1, 2), rhs_dilation=(1, 2, 1),
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC")))(dy, k)

It is the input gradient of a grouped 3-D conv's groups, which ``split`` computed that way.
"""

import json
import subprocess
import sys

CHILD = r"""
import json, numpy as np, jax, jax.numpy as jnp
import jaxconv.functional as F
x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 6, 6, 6, 4)), jnp.float32)
k = jnp.asarray(np.random.default_rng(1).standard_normal((5, 3, 2, 2, 4)), jnp.float32)
def grads(impl):
    def loss(a, b):
        y = F.conv(a, b, strides=(2, 1, 2), kernel_dilation=(1, 2, 1), feature_group_count=2,
                   padding=((0, 2), (2, 1), (1, 1)), impl=impl)
        return jnp.sum(y ** 2)
    return jax.grad(loss, argnums=(0, 1))(x, k)
out = {}
for impl in ("auto", "split", "canonical"):
    out[impl] = [float(jnp.max(jnp.abs(a - b) / (1 + jnp.abs(b))))
                 for a, b in zip(grads(impl), grads("xla"))]
print(json.dumps(out))
"""


def test_grouped_3d_conv_gradient_compiles_and_equals_xla():
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"the child died ({done.returncode}): {done.stderr[-2000:]}"
    errors = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(e < 1e-4 for errs in errors.values() for e in errs), errors
