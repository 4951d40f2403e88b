"""The command line's errors: a user's mistake is one line, a bug in jaxconv a traceback."""

import numpy as np
import pytest

from jaxconv import analysis, cli
from jaxconv.functional import pool

EXPLAIN = ["explain", "conv2d", "--input", "8x8x3", "--filters", "4"]


def test_a_users_mistake_is_one_line(capsys):
    assert cli.main(["predict", "runs/none", "x.npy", "--variant", "v", "--output", "p.txt"]) == 2
    err = capsys.readouterr().err
    assert err == "jaxconv predict: error: --output: 'p.txt' must end in .npy\n"


def test_a_type_error_that_jaxconv_raises_on_purpose_is_the_users():
    with pytest.raises(TypeError) as caught:
        pool.window_shape_tuple("max_pool", 3)
    assert cli.user_error(caught.value)


def _numpy_error(*args, **kwargs):
    """A bug deep inside: NumPy refusing what jaxconv gave it."""
    return np.reshape(np.zeros(3), (2, 2))


# analysis.summary in explain's place: the command calls it with arguments it does not take,
# a TypeError that Python raises in jaxconv's own code
@pytest.mark.parametrize(("broken", "kind"), [(analysis.summary, "TypeError"),
                                              (_numpy_error, "ValueError")])
def test_a_bug_in_jaxconv_shows_its_traceback_and_asks_for_a_report(broken, kind, monkeypatch,
                                                                    capsys):
    monkeypatch.setattr(analysis, "explain", broken)
    assert cli.main(EXPLAIN) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and f"\n{kind}: " in err
    assert "jaxconv explain: internal error: this is a bug in jaxconv" in err
    assert "please report it" in err
