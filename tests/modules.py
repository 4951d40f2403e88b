"""Building a module for a test in one compiled program, quickly.

A module built op by op compiles each of its random draws on its own; one ``jax.jit`` of the
whole constructor compiles once, but XLA's optimisation passes then take most of a test's time
for a program that runs once (8.2 s for the basic-0.1m preset's constructor on 2 CPU cores,
2.1 s without them). `build` compiles without those passes, as
`jaxconv.experiment.trained.build_model` does for runs; the weights are those of the module
built op by op to within a few ulps (compiled together, the scalings round differently), so
no test that uses it may depend on their exact bits.
"""

from collections.abc import Callable

import jax
from flax import nnx

_NO_PASSES = {"xla_backend_optimization_level": 0}


def build(make: Callable[[nnx.Rngs], nnx.Module], seed: int = 0) -> nnx.Module:
    """``make(nnx.Rngs(seed))``, its constructor run as one program compiled without XLA's
    optimisation passes."""
    graphdefs = []

    def create(key):
        graphdef, state = nnx.split(make(nnx.Rngs(key)))
        graphdefs.append(graphdef)
        return state

    state = jax.jit(create, compiler_options=_NO_PASSES)(jax.random.key(seed))
    return nnx.merge(graphdefs[0], state)
