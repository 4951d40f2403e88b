"""`jaxconv.functional.padding`: every form resolves to the pairs its definition gives."""

import pytest

from jaxconv.functional import padding as P


@pytest.mark.parametrize(("size", "window", "stride", "expected"), [
    (5, 3, 1, (1, 1)), (5, 4, 1, (1, 2)), (5, 3, 2, (1, 1)), (6, 3, 2, (0, 1)),
    (7, 1, 3, (0, 0)), (4, 5, 1, (2, 2)),
])
def test_same_is_tf_convention(size, window, stride, expected):
    assert P.same(size, window, stride) == expected


def test_every_form_resolves():
    kw = dict(in_spatial=(8, 9), window=(3, 5), strides=(1, 2))
    assert P.resolve("valid", "zeros", **kw) == (((0, 0), (0, 0)), "zeros")
    assert P.resolve("Causal", "reflect", **kw) == (((2, 0), (4, 0)), "reflect")
    assert P.resolve("REPLICATE", "zeros", **kw) == (((1, 1), (2, 2)), "replicate")
    assert P.resolve("REPLICATE", "replicate", **kw) == (((1, 1), (2, 2)), "replicate")
    assert P.resolve(2, "circular", **kw) == (((2, 2), (2, 2)), "circular")
    assert P.resolve((1, 0), "zeros", **kw) == (((1, 1), (0, 0)), "zeros")
    assert P.resolve([(0, 1), 3], "zeros", **kw) == (((0, 1), (3, 3)), "zeros")


def test_flax_shortcuts_ignore_the_stride():
    assert P.amounts("CIRCULAR", in_spatial=(9,), window=(4,), strides=(3,)) == \
        (((1, 2),), "circular")
