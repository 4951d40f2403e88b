"""The formulation fuzz (`jaxconv.bench.fuzz`): a seeded slice every run, and a harness that a
process abort cannot stop."""

import functools
import pathlib
import sys
import time

import pytest

from jaxconv.bench import fuzz

HERE = pathlib.Path(__file__).parent


def test_a_seeded_slice_agrees_with_lax():
    """Every formulation claiming each case, float32 and bfloat16, values and both gradients."""
    failures, checks = fuzz.run(10, seed=20261201, log=lambda s: None)
    report = "\n".join(f.markdown() for f in failures)
    assert not failures, report
    assert checks == 2 * sum(len(impls) for _, impls in fuzz.cases(10, 20261201))


def test_an_abort_fails_its_case_and_the_run_goes_on():
    lines = []
    failures, checks = fuzz.run(3, seed=1, dtypes=("float32",), log=lines.append,
                                worker=(sys.executable, str(HERE / "fuzz_abort_worker.py")))
    every = [(c, i) for c, impls in fuzz.cases(3, 1) for i in impls]
    assert checks == len(every) > 3
    assert len(failures) == 1 and "the process aborted (exit code" in failures[0].problem
    assert (failures[0].case, failures[0].impl) == every[2]
    assert any(line.startswith("ABORT case") for line in lines)


def test_a_check_past_its_timeout_fails_and_the_run_goes_on():
    lines = []
    start = time.monotonic()
    failures, checks = fuzz.run(3, seed=1, dtypes=("float32",), log=lines.append, case_timeout=5,
                                worker=(sys.executable, str(HERE / "fuzz_abort_worker.py"),
                                        "hang"))
    every = [(c, i) for c, impls in fuzz.cases(3, 1) for i in impls]
    assert checks == len(every)
    assert len(failures) == 1 and failures[0].problem.startswith("timed out after 5 s")
    assert (failures[0].case, failures[0].impl) == every[2]
    assert any(line.startswith("TIMEOUT case") for line in lines)
    assert time.monotonic() - start < 300, "the hung child was not killed"


def test_reproducers_run_as_written():
    case, impls = next(fuzz.cases(1, seed=3))
    namespace = {}
    exec(case.reproducer(impls[-1], "float32").replace("print(", "result = ("), namespace)
    assert len(namespace["result"]) == 2


def test_the_pytorch_oracle_agrees_with_lax():
    """The second oracle, on cases covering transposed convs, fills (two of them as wide as
    the input) and input dilation."""
    pytest.importorskip("torch")
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxconv import functional as F
    from jaxconv.bench import torch_oracle

    wide_fills = [c for c, _ in fuzz.cases(91, seed=0) if c.index in (49, 90)]
    assert len(wide_fills) == 2 and all(c.kwargs.get("padding_mode") for c in wide_fills)
    seen = set()
    for case in [c for c, _ in fuzz.cases(40, seed=7)] + wide_fills:
        seen |= {case.op, case.kwargs.get("padding_mode"), "input_dilation" * (
            "input_dilation" in case.kwargs), "output_padding" * ("output_padding" in case.kwargs)}
        call = functools.partial(F.conv if case.op == "conv" else F.conv_transpose, impl="xla",
                                 precision="highest", **case.kwargs)
        rng = np.random.default_rng(case.seed)
        x, k = rng.standard_normal(case.x_shape), rng.standard_normal(case.kernel_shape)
        y, pull = jax.vjp(call, jnp.asarray(x, jnp.float32), jnp.asarray(k, jnp.float32))
        cotangent = rng.standard_normal(y.shape)
        expected = (y, *pull(jnp.asarray(cotangent, jnp.float32)))
        got = torch_oracle.reference(case.op, case.x_shape, case.kernel_shape, case.kwargs, x, k,
                                     cotangent)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, np.asarray(b, np.float64), rtol=1e-4,
                                       atol=1e-4 * (np.abs(a).max(initial=0) + 1),
                                       err_msg=case.reproducer("xla", "float32"))
    assert {"conv", "conv_transpose", "input_dilation", "output_padding"} <= seen
    assert seen & {"circular", "reflect", "replicate"}
