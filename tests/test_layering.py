"""No import runs upward through the layers of the package (module level or inside a function).

The order is the design's: each package imports only those before it; ``bench`` sits beside
``experiment`` and ``interop`` beside ``linen``, above ``nnx``; ``typing`` and ``_hints`` sit
below everything, then ``tuning`` (what depends on the machine) and ``environment`` (process
settings), ``cli`` above.
"""

import ast
import pathlib

import pytest

import jaxconv

ROOT = pathlib.Path(jaxconv.__file__).parent
RANK = {"typing": 0, "_hints": 0, "_moved": 0, "tuning": 1, "environment": 2, "functional": 3,
        "nnx": 4, "linen": 5, "interop": 5, "blocks": 6, "models": 7, "analysis": 8, "data": 9,
        "train": 10, "experiment": 11, "bench": 11, "cli": 12, "__main__": 13}


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def _imports(path: pathlib.Path) -> set[str]:
    """Every ``jaxconv.*`` module the file imports, as dotted names (relative imports
    resolved against the file's package)."""
    package = ["jaxconv", *path.relative_to(ROOT).parent.parts]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "jaxconv"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[:len(package) - node.level + 1], *filter(None, [base])])
            if base == "jaxconv":      # a module of the package, or a name of its __init__
                found |= {f"jaxconv.{a.name}" for a in node.names
                          if (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").exists()}
            elif base.startswith("jaxconv."):
                found.add(base)
    return found


MODULES = sorted(p for p in ROOT.rglob("*.py") if p.parent != ROOT or p.stem != "__init__")


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ROOT)) for p in MODULES])
def test_no_import_runs_upward(path):
    relative = path.relative_to(ROOT)
    layer = relative.parts[0].removesuffix(".py")
    assert layer in RANK, f"{relative}: {layer} has no place in the layer order"
    imported = {_layer(m) for m in _imports(path)} - {"__init__"}
    assert imported <= set(RANK), f"{relative} imports unplaced {sorted(imported - set(RANK))}"
    upward = sorted(m for m in _imports(path)
                    if _layer(m) in RANK and _layer(m) != layer and RANK[_layer(m)] >= RANK[layer])
    assert not upward, f"{relative} imports {upward}, at or above its own layer ({layer})"


def test_functional_knows_nothing_of_flax_and_only_experiment_knows_yaml():
    for path in MODULES:
        layer = path.relative_to(ROOT).parts[0].removesuffix(".py")
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for a in node.names}
        names |= {node.module.split(".")[0] for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        assert not (layer == "functional" and "flax" in names), path
        assert "yaml" not in names or layer == "experiment", path
