"""The documentation build's own checks (docs/build.py): the docstring rule, the completeness
check over the package, the guide runner's output matcher and a small guide run end to end.
Running every guide of docs/guides is the docs build's own step (`make docs`, a stage of CI), not
repeated here."""

import importlib.util
import pathlib
import sys

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("docs_build", ROOT / "docs" / "build.py")
build = importlib.util.module_from_spec(spec)
sys.modules["docs_build"] = build
spec.loader.exec_module(build)


@pytest.mark.parametrize(("expected", "printed", "matches"), [
    ("a\nb", "a\nb\n", True),
    ("a\nb", "a\nc", False),
    ("took ... s", "took 1.25 s", True),
    ("took ... s", "took 1.25 ms", False),
    ("first\n...\nlast", "first\nx\ny\nlast", True),
    ("first\n...\nlast", "first\nlast", True),
    ("first\n...\nlast", "first\nx", False),
    ("", "", True),
    ("", "something", False),
    ("trailing   ", "trailing", True),
])
def test_output_matcher(expected, printed, matches):
    assert build.output_matches(expected, printed) is matches


def _documented(x: int) -> int:
    """Doubles.

    Args:
      x: a number.

    Returns:
      ``2 x``.
    """
    return 2 * x


def _no_returns(x: int) -> int:
    """Doubles.

    Args:
      x: a number.
    """
    return 2 * x


def _generator(n: int):
    """Counts.

    Args:
      n: how far.
    """
    yield from range(n)


def _no_value(x: int) -> None:
    """Nothing back.

    Args:
      x: ignored.
    """


class _Plain:
    """A class without its arguments."""

    def __init__(self, size: int):
        self.size = size


class _Error(ValueError):
    """A mistake."""


def test_docstring_rule():
    assert build.docstring_problems(_documented) == []
    assert build.docstring_problems(_no_returns) == ["no Returns: section"]
    assert build.docstring_problems(_generator) == ["no Yields: section"]
    assert build.docstring_problems(_no_value) == []
    assert build.docstring_problems(_Plain) == ["no Args: or Attributes: section"]
    assert build.docstring_problems(_Error) == []
    assert build.docstring_problems(3, constant_doc=None) == ["no docstring"]
    assert build.docstring_problems(3, constant_doc="Three.") == []


def test_every_public_name_has_a_page_and_its_sections():
    pytest.importorskip("griffe", reason="the docs extra is not installed (make docs installs "
                                         "it; CI runs this test with it)")
    build.write_api_pages()
    assert build.completeness() == []
    assert build.config_reference_problems() == []


def test_config_reference_covers_every_recipe_field():
    import dataclasses

    from jaxconv.train import Recipe

    text = build.config_reference()
    for field in dataclasses.fields(Recipe):
        assert f"| `{field.name}` |" in text


def test_a_guide_runs_and_a_wrong_output_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "ROOT", tmp_path)
    (tmp_path / "configs").mkdir()
    page = tmp_path / "guide.md"
    page.write_text("```python\nx = 2\nprint(x * 21)\n```\n\n```text\n42\n```\n\n"
                    "<!-- docs: skip -->\n```python\nraise SystemExit\n```\n\n"
                    "```python\nprint(f'took {x / 3} s')\n```\n\n```text\ntook ... s\n```\n"
                    "```console\n$ echo hello\nhello\n```\n")
    build.run_page(page)
    page.write_text("```python\nprint(1)\n```\n\n```text\n2\n```\n")
    with pytest.raises(build.GuideError, match="output differs"):
        build.run_page(page)
    page.write_text("```python\nprint(1)\n```\n")
    with pytest.raises(build.GuideError, match="output differs"):
        build.run_page(page)


def test_a_guide_runs_under_strict_promotion(tmp_path, monkeypatch):
    """A guide's code is held to the suite's rule: a silent rank promotion fails the page."""
    monkeypatch.setattr(build, "ROOT", tmp_path)
    (tmp_path / "configs").mkdir()
    page = tmp_path / "guide.md"
    page.write_text("```python\nimport jax.numpy as jnp\nx = jnp.ones(3) + jnp.ones((2, 3))\n"
                    "```\n")
    # the suite's own strictness off, so only the guide runner's can raise
    with jax.numpy_rank_promotion("allow"), \
            pytest.raises(build.GuideError, match="jax_numpy_rank_promotion='raise'"):
        build.run_page(page)
