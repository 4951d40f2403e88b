"""One check, in a child process: a formulation's output and both gradients on one case
against lax at HIGHEST precision (and PyTorch where installed). `serve` is the child's loop;
starting, timing and restarting children is `jaxconv.bench.fuzz.runner`'s."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np

from jaxconv.bench.fuzz.cases import Case

#: max |formulation - lax| <= TOLERANCE * (max |lax| + 1), per dtype. bfloat16 has an 8-bit
#: mantissa: products are exact in float32 accumulation but each operand was rounded once.
TOLERANCE = {"float32": 2e-5, "bfloat16": 2e-2}


#: The operands and oracle results of the case being checked, per dtype: every formulation of
#: a case is checked against the same references, computed (and compiled) once.
_REFERENCES: dict[tuple[int, int, str], tuple[Any, Any, Any, dict[str, Any]]] = {}


def _vjp(case: Case, impl: str, dtype: str, precision: Any):
    """The jitted ``(x, k, cotangent) -> (y, dx, dk)`` of ``case`` computed by ``impl`` in
    ``dtype`` (float32 operands in, float32 results out)."""
    import jax
    import jax.numpy as jnp

    from jaxconv import functional

    call = functional.conv if case.op == "conv" else functional.conv_transpose

    def f(a, b):
        return call(a.astype(dtype), b.astype(dtype), impl=impl, precision=precision,
                    **case.kwargs).astype(jnp.float32)

    def vjp(a, b, cotangent):
        y, pull = jax.vjp(f, a, b)
        return (y, *pull(cotangent))
    return jax.jit(vjp)


def _references(case: Case, dtype: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``x``, ``k``, the cotangent, and what lax at HIGHEST precision (and PyTorch where
    installed) compute from them; bfloat16 cases round the operands first, so the references
    see what the formulation sees."""
    import jax
    import jax.numpy as jnp

    from jaxconv import functional
    from jaxconv.bench import torch_oracle

    key = (case.index, case.seed, dtype)
    if key in _REFERENCES:
        return _REFERENCES[key]
    if not any(cached[:2] == key[:2] for cached in _REFERENCES):
        _REFERENCES.clear()
    call = functional.conv if case.op == "conv" else functional.conv_transpose
    rng = np.random.default_rng(case.seed)
    x = jnp.asarray(rng.standard_normal(case.x_shape), jnp.float32)
    k = jnp.asarray(rng.standard_normal(case.kernel_shape), jnp.float32)
    if dtype == "bfloat16":
        x, k = (v.astype(jnp.bfloat16).astype(jnp.float32) for v in (x, k))
    shape = jax.eval_shape(lambda a, b: call(a, b, impl="xla", **case.kwargs), x, k).shape
    cotangent = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    oracles = {"lax": _vjp(case, "xla", "float32", jax.lax.Precision.HIGHEST)(x, k, cotangent)}
    reference = torch_oracle.reference(case.op, case.x_shape, case.kernel_shape, case.kwargs,
                                       x, k, cotangent)
    if reference is not None:
        oracles["PyTorch"] = reference
    _REFERENCES[key] = (x, k, cotangent, oracles)
    return _REFERENCES[key]


def _check(case: Case, impl: str, dtype: str) -> str | None:
    """Runs one formulation on one case; a mismatch description, or None when it agrees."""
    x, k, cotangent, oracles = _references(case, dtype)
    got = _vjp(case, impl, dtype, None)(x, k, cotangent)
    for oracle, expected in oracles.items():
        for name, a, b in zip(("output", "input gradient", "kernel gradient"), got, expected):
            a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
            if a.shape != b.shape:
                return f"{name}: shape {a.shape}, {oracle} gives {b.shape}"
            error = float(np.max(np.abs(a - b))) if a.size else 0.0
            bound = TOLERANCE[dtype] * (float(np.max(np.abs(b))) if b.size else 0.0) + \
                TOLERANCE[dtype]
            if not error <= bound:
                return f"{name}: max error {error:.3g} > {bound:.3g} against {oracle}"
    return None


def serve() -> None:
    """Child process: reads tasks (one JSON per line), prints a start line and a result each."""
    for line in sys.stdin:
        task = json.loads(line)
        case = Case(**{**task["case"], "x_shape": tuple(task["case"]["x_shape"]),
                       "kernel_shape": tuple(task["case"]["kernel_shape"])})
        print(json.dumps({"start": task["id"]}), flush=True)
        try:
            problem = _check(case, task["impl"], task["dtype"])
        except Exception as error:   # a Python error is a failure of that case, not the run
            problem = f"raised {type(error).__name__}: {str(error).splitlines()[0][:300]}"
        print(json.dumps({"done": task["id"], "problem": problem}), flush=True)
