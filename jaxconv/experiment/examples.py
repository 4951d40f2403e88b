"""The example configs that ship inside the package, run by name from any directory.

They live in the repository's ``configs/`` folder; ``jaxconv/configs`` is a link to it, so a
source checkout (an editable install included) and an installed wheel (which holds a copy of the
files) find them at the same place. A config's name is its path under that folder without
``.yaml``: ``quickstart``, ``fashion_mnist/bottlenecks``. Where a run writes comes from the
config's ``output_dir``, relative to the current directory (``runs/`` by default), whichever way
the config was named. Loading and validating a config is `jaxconv.experiment.config`'s job.

>>> "quickstart" in names()
True
>>> path("quickstart").name
'quickstart.yaml'
"""

from __future__ import annotations

import os
import pathlib
import re

from jaxconv._hints import did_you_mean

#: The folder of the shipped configs.
ROOT = pathlib.Path(__file__).resolve().parents[1] / "configs"
SUFFIX = ".yaml"


def names() -> list[str]:
    """Every shipped config's name.

    Returns:
      The names, top-level ones first (``quickstart``), then those in folders
      (``fashion_mnist/bottlenecks``), each group sorted.
    """
    found = (p.relative_to(ROOT).with_suffix("").as_posix() for p in ROOT.rglob(f"*{SUFFIX}"))
    return sorted(found, key=lambda name: (name.count("/"), name))


def path(name: str) -> pathlib.Path:
    """The file of a shipped config.

    Args:
      name: a name from `names`, with or without ``.yaml``.

    Returns:
      The config's path inside the installed package.

    Raises:
      ValueError: no shipped config has that name; the message lists those that do.
    """
    stem = name.removesuffix(SUFFIX)
    if stem in names():
        return ROOT / f"{stem}{SUFFIX}"
    raise ValueError(f"config {name!r}: no shipped config has that name"
                     f"{did_you_mean(stem, names())}; expected one of: {', '.join(names())}")


def resolve(config: str | os.PathLike[str]) -> pathlib.Path:
    """A config argument as a file.

    Args:
      config: a YAML file (``configs/quickstart.yaml``, relative to the current directory) or
        the name of a shipped config (``quickstart``); an existing file wins over a name.

    Returns:
      ``config`` itself where it is an existing file, otherwise the shipped config's path.

    Raises:
      ValueError: ``config`` is neither an existing file nor a shipped config's name; the
        message names both and lists the shipped names.
    """
    given = pathlib.Path(config)
    if given.is_file():
        return given
    if isinstance(config, str) and config.removesuffix(SUFFIX) in names():
        return path(config)
    stem = str(config).removesuffix(SUFFIX)
    raise ValueError(f"config {str(config)!r}: no such file, and no shipped config has that "
                     f"name{did_you_mean(stem, names())}; expected a YAML file or one of: "
                     f"{', '.join(names())}")


def summary(name: str) -> str:
    """What a shipped config trains, in one sentence.

    Args:
      name: a name from `names`.

    Returns:
      The first sentence of the config's header comment (``""`` where it has none).

    >>> summary("quickstart")
    "Quickstart: five bottleneck designs x 2 seeds on scikit-learn's 8x8 digits (built in)."
    """
    header = []
    for line in path(name).read_text().splitlines():
        text = line.lstrip("#").strip()
        if not line.startswith("#") or text.startswith("Command:"):
            break
        header.append(text)
    return re.split(r"(?<=\.)\s", " ".join(header), maxsplit=1)[0]
