"""No import runs upward through the layers of the package (module level or inside a function).

The order is the design's: each package imports only those before it; ``bench`` sits beside
``experiment`` and ``interop`` beside ``linen``, above ``nnx``; ``typing``, ``_hints`` and
``environment`` sit below everything, ``cli`` above.
"""

import ast
import pathlib

import pytest

import jaxconv

ROOT = pathlib.Path(jaxconv.__file__).parent
RANK = {"typing": 0, "_hints": 0, "environment": 0, "functional": 1, "nnx": 2, "linen": 3,
        "interop": 3, "blocks": 4, "models": 5, "analysis": 6, "data": 7, "train": 8,
        "experiment": 9, "bench": 9, "cli": 10, "__main__": 11}


def _layer(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def _imports(path: pathlib.Path) -> set[str]:
    """Every ``jaxconv.*`` module the file imports, as dotted names."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("jaxconv.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "jaxconv":
                found |= {f"jaxconv.{a.name}" for a in node.names}
            elif node.module.startswith("jaxconv."):
                found.add(node.module)
    return found


MODULES = sorted(p for p in ROOT.rglob("*.py") if p.parent != ROOT or p.stem in RANK)


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(ROOT)) for p in MODULES])
def test_no_import_runs_upward(path):
    relative = path.relative_to(ROOT)
    layer = relative.parts[0].removesuffix(".py")
    upward = sorted(m for m in _imports(path)
                    if _layer(m) in RANK and _layer(m) != layer and RANK[_layer(m)] >= RANK[layer])
    assert not upward, f"{relative} imports {upward}, at or above its own layer ({layer})"


def test_every_package_has_a_place():
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(RANK), sorted(packages - set(RANK))
