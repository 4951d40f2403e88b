"""Names that moved before 0.1.0 still resolve through their old modules for one release, each
with a `DeprecationWarning` that names the new home (CHANGELOG.md's Migration section)."""

import importlib

import pytest

MOVED = [("jaxconv.functional.cpu", "isa", "jaxconv.tuning.machine"),
         ("jaxconv.functional.timing", "median_ms", "jaxconv.tuning.timing"),
         ("jaxconv.bench.timing", "median_ms_of", "jaxconv.tuning.timing"),
         ("jaxconv.train.compile_table", "lookup", "jaxconv.tuning.compile_table"),
         ("jaxconv.analysis.squeeze", "retention", "jaxconv.analysis.retention")]


@pytest.mark.parametrize(("old", "name", "new"), [m for m in MOVED if m[2]])
def test_a_moved_name_resolves_and_warns(old, name, new):
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} is deprecated .* use "
                                                 rf"{new}\.{name}"):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)


def test_an_unknown_name_of_a_moved_module_is_an_attribute_error():
    module = importlib.import_module("jaxconv.functional.cpu")
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_compiling_with_warns_and_does_nothing():
    from jaxconv.functional import cpu

    with pytest.warns(DeprecationWarning, match="compiling_with is deprecated, does nothing"):
        with cpu.compiling_with({"a": "1"}):
            pass
