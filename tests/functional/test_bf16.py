"""bfloat16 through every formulation: accuracy against float64, and preferred_element_type."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxconv import functional as F
from tests import reference

CASES = {  # name: (input shape, kernel shape, conv arguments)
    "depthwise 7x7": ((2, 12, 12, 8), (7, 7, 1, 8), dict(feature_group_count=8)),
    "depthwise 3x3 stride 2": ((2, 9, 9, 8), (3, 3, 1, 16), dict(feature_group_count=8,
                                                                strides=2)),
    "1x1": ((2, 6, 6, 16), (1, 1, 16, 8), {}),
    "grouped": ((2, 7, 7, 8), (3, 3, 2, 8), dict(feature_group_count=4)),
    "dense 3x3": ((2, 7, 7, 4), (3, 3, 4, 6), {}),
    "3-D": ((1, 5, 6, 6, 4), (3, 3, 3, 4, 4), {}),
}


def _claims(name, x, k, args):
    try:
        F.plan(x, k, impl=name, **args)
    except ValueError:
        return False
    return True


def _operands(xs, ks, seed=0):
    r = np.random.default_rng(seed)
    x = jnp.asarray(r.standard_normal(xs), jnp.bfloat16)
    k = jnp.asarray(r.standard_normal(ks) / np.sqrt(np.prod(ks[:-1])), jnp.bfloat16)
    return x, k


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_formulation_is_as_accurate_as_xla_in_bfloat16(case):
    """Error against a float64 conv of the same bf16 operands: at most 1.5x lax's own error
    plus one bf16 rounding of the output (accumulating in bf16 is several times worse)."""
    xs, ks, args = CASES[case]
    x, k = _operands(xs, ks)
    exact = reference.conv(np.asarray(x, np.float64), np.asarray(k, np.float64),
                           strides=(args.get("strides", 1),) * (len(ks) - 2), padding="SAME",
                           groups=args.get("feature_group_count", 1))
    scale = np.abs(exact).max()
    errors = {}
    for name in F.CONV:
        if _claims(name, x, k, args):
            y = np.asarray(F.conv(x, k, padding="SAME", impl=name, **args), np.float64)
            errors[name] = np.abs(y - exact).max()
    assert "xla" in errors and len(errors) > 1, errors
    bound = 1.5 * errors["xla"] + 2 ** -8 * scale
    assert all(e <= bound for e in errors.values()), (errors, bound)


@pytest.mark.parametrize("case", sorted(CASES))
def test_preferred_element_type_is_honoured_or_the_call_is_not_claimed(case):
    xs, ks, args = CASES[case]
    x, k = _operands(xs, ks)
    want = F.conv(x, k, impl="xla", preferred_element_type=jnp.float32, **args)
    assert want.dtype == jnp.float32
    for name in [*F.CONV, "auto"]:
        if name == "auto" or _claims(name, x, k, {**args, "preferred_element_type": jnp.float32}):
            y = F.conv(x, k, impl=name, preferred_element_type=jnp.float32, **args)
            assert y.dtype == jnp.float32, name
            np.testing.assert_allclose(y, want, atol=0.05, rtol=0.05, err_msg=name)


@pytest.mark.parametrize("impl", sorted(F.TRANSPOSE))
def test_transposed_conv_honours_preferred_element_type(impl):
    x, k = _operands((2, 5, 5, 8), (2, 2, 4, 8))
    why = F.plan(x, k, op="conv_transpose", strides=3, padding=0,
                 preferred_element_type=jnp.float32, impl="xla").candidates[impl]
    if why is not None:
        assert impl == "onednn" and ("preferred_element_type" in why or "native" in why), why
        return
    y = F.conv_transpose(x, k, strides=3, padding=0, preferred_element_type=jnp.float32,
                         impl=impl)
    assert y.dtype == jnp.float32


def test_integer_depthwise_convs_go_through_auto():
    x = jnp.arange(2 * 6 * 6 * 4, dtype=jnp.int32).reshape(2, 6, 6, 4) % 7
    k = jnp.arange(9 * 4, dtype=jnp.int32).reshape(3, 3, 1, 4) % 5
    want = F.conv(x, k, feature_group_count=4, impl="xla")
    got = F.conv(x, k, feature_group_count=4)
    assert got.dtype == jnp.int32
    np.testing.assert_array_equal(got, want)


def test_a_formulation_that_cannot_take_the_dtype_here_is_not_claimed(monkeypatch):
    """``onednn`` computes bfloat16 only on a CPU with native bf16 arithmetic: elsewhere
    `F.plan` says so for bfloat16 operands (so nothing asks it to), and float32 is claimed."""
    from jaxconv.functional.formulations.onednn import unsupported_onednn
    from jaxconv.tuning import machine

    monkeypatch.setattr(machine, "native_bf16", lambda: False)
    x, k = _operands((2, 6, 6, 8), (3, 3, 8, 8))
    why = F.plan(x, k, impl="xla").candidates["onednn"]
    assert why is not None and ("bfloat16 needs a CPU with native bf16" in why or
                                why == unsupported_onednn(F.plan(x, k).spec)), why
    with pytest.raises(ValueError, match="impl='onednn' cannot express this conv"):
        F.plan(x, k, impl="onednn")
    monkeypatch.setattr(machine, "native_bf16", lambda: True)
    assert F.plan(x, k, impl="xla").candidates["onednn"] == \
        unsupported_onednn(F.plan(x, k).spec)
