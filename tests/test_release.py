"""The release's promises to a user: `jaxconv --version`, and example configs that run by name
from any directory while the repository's ``configs/`` paths keep working. The wheel itself is
built and installed by CI's .ci/wheel_smoke.sh, not here."""

import fnmatch
import pathlib
import tomllib

import pytest

import jaxconv
from jaxconv import cli, experiment
from jaxconv.experiment import examples

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_version_is_the_packages(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"jaxconv {jaxconv.__version__}"
    major, minor, patch = jaxconv.__version__.split(".")  # semantic versioning: X.Y.Z
    assert all(part.isdigit() for part in (major, minor, patch))


def test_the_changelog_has_an_entry_for_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {jaxconv.__version__} " in changelog
    assert "### Migration" in changelog


def test_run_list_names_every_shipped_config(capsys):
    assert cli.main(["run", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [line.split()[0] for line in lines[1:]]
    assert listed == examples.names()
    assert "quickstart" in listed and "fashion_mnist/bottlenecks" in listed
    quickstart = next(line for line in lines if line.split()[0] == "quickstart")
    assert "five bottleneck designs" in quickstart


def test_a_name_resolves_to_the_packaged_file_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    packaged = pathlib.Path(jaxconv.__file__).parent / "configs" / "quickstart.yaml"
    assert examples.resolve("quickstart") == packaged
    assert examples.resolve("quickstart.yaml") == packaged
    # one copy in git: the package's configs folder is the repository's
    assert packaged.resolve() == (ROOT / "configs" / "quickstart.yaml").resolve()
    by_name = experiment.load("quickstart", ["train.epochs=1"])
    assert by_name.run_dir == pathlib.Path("runs/quickstart")  # under the current directory
    assert by_name.train.epochs == 1


def test_a_repository_path_works_as_before_and_wins_over_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert examples.resolve("configs/quickstart.yaml") == pathlib.Path("configs/quickstart.yaml")
    assert experiment.load("configs/quickstart.yaml").run_dir == pathlib.Path("runs/quickstart")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart").write_text((ROOT / "configs/mixed_precision.yaml").read_text())
    assert examples.resolve("quickstart") == pathlib.Path("quickstart")
    assert experiment.load("quickstart").name == "mixed_precision"


@pytest.mark.parametrize("name", examples.names())
def test_every_shipped_config_loads_by_name(name):
    assert experiment.load(name).variants


def test_every_shipped_config_goes_into_the_wheel():
    """The package-data globs cover every config file (a deeper folder would not ship)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["jaxconv"]
    assert "py.typed" in globs
    for name in examples.names():
        assert any(fnmatch.fnmatch(f"configs/{name}.yaml", g) and g.count("/") == name.count("/")
                   + 1 for g in globs), name


def test_a_config_that_is_neither_a_file_nor_a_name_is_one_clear_line(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", "quickstrat"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("jaxconv run: error: config 'quickstrat': no such file")
    assert "did you mean 'quickstart'?" in err
    assert ", ".join(examples.names()) in err
    with pytest.raises(experiment.ConfigError, match=r"config 'configs/nope.yaml': no such file"):
        experiment.load("configs/nope.yaml")
    with pytest.raises(ValueError, match=r"config 'nope': no shipped config has that name; "
                                         r"expected one of: .*quickstart"):
        examples.path("nope")


def test_run_without_a_config_says_what_it_takes(capsys):
    assert cli.main(["run"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("jaxconv run: error: config: missing; expected a YAML file or the "
                          "name of a shipped config (mixed_precision, quickstart")
