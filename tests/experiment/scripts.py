"""The one-off scripts of ``experiments/`` as modules, for their tests."""

import importlib.util
import pathlib
from types import ModuleType

EXPERIMENTS = pathlib.Path(__file__).parents[2] / "experiments"


def load(name: str) -> ModuleType:
    """``experiments/<name>.py``, executed as a module of that name (not imported into
    ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
