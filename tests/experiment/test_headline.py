"""The README's headline numbers and the docs' blocks table match the committed result files:
``experiments/headline.py --check`` regenerates them and fails on a difference."""

import pathlib
import shutil

import pytest

from tests.experiment import scripts

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _headline():
    return scripts.load("headline")


def test_the_committed_headline_numbers_match_the_result_files(capsys):
    assert _headline().main(["--check"]) == 0, capsys.readouterr().out


def _copy(tmp_path):
    """The files the check reads, with the results linked rather than copied."""
    for relative in ("README.md", "docs/reference/blocks.md", "experiments/blocks_table.py"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    (tmp_path / "experiments" / "results").symlink_to(ROOT / "experiments" / "results")
    return tmp_path


def test_a_stale_number_fails_the_check_and_a_rewrite_fixes_it(tmp_path, capsys):
    headline = _headline()
    root = _copy(tmp_path)
    readme = root / "README.md"
    readme.write_text(readme.read_text().replace("93.29 ± 0.13 %", "93.30 ± 0.13 %", 1))
    blocks = root / "docs" / "reference" / "blocks.md"
    blocks.write_text(blocks.read_text().replace("| 25.2M |", "| 19.9M |", 1))
    assert headline.main(["--check", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "-| MobileNetV2 inverted residual | 303,782 | 93.30 ± 0.13 % |" in out
    assert "+| MobileNetV2 inverted residual | 303,782 | 93.29 ± 0.13 % |" in out
    assert "-| `convnext` |" in out and "| 25.2M |" in out
    assert headline.main(["--root", str(root)]) == 0
    assert headline.main(["--check", "--root", str(root)]) == 0
    assert readme.read_text() == (ROOT / "README.md").read_text()


def test_text_outside_the_markers_is_kept_and_missing_markers_are_an_error():
    replace = _headline().replace
    text = "before\n<!-- x:start -->\nold\n<!-- x:end -->\nafter\n"
    assert replace(text, "x", "new") == "before\n<!-- x:start -->\nnew\n<!-- x:end -->\nafter\n"
    with pytest.raises(ValueError, match="expected one '<!-- y:start -->'"):
        replace(text, "y", "new", "README.md")
