"""Builds the documentation site into ``site/``: ``.venv/bin/python docs/build.py``.

Four steps, each of which fails the build (exit status 1, every offender listed):

1. API pages: one page per public module under ``docs/api/`` (generated, not committed), with a
   mkdocstrings ``:::`` entry per public name, and the config reference
   ``docs/reference/config.md``, generated from `jaxconv.train.Recipe` and
   `jaxconv.experiment.config.KEY_HELP` so it cannot drift from the code.
2. Completeness: every public name (a public module's ``__all__``, or the public names a module
   without ``__all__`` defines) has a page and a docstring with the sections its kind needs
   (`docstring_problems`). ``docs/undocumented.txt`` lists names still waiting for their
   sections; a name there that is now complete is an error too, so the list only shrinks.
3. Guides: every ``docs/guides/*.md`` page's code runs, in order, one namespace per page, in a
   fresh folder (with ``configs/`` linked in), and its printed output is checked (`run_page`).
4. ``mkdocs build --strict``: any warning (a broken link, a name mkdocstrings cannot find) is an
   error.

Options: ``--no-guides`` skips step 3, ``--only NAME`` runs the guides whose file name contains
NAME, ``--no-site`` skips step 4.

How a guide is checked:

- A fenced ``python`` block runs in the page's namespace; what it prints must match the
  ``text`` (or ``output``) block right after it. A block that prints with no such block after it
  fails.
- A fenced ``console`` block holds commands: each line starting with ``$ `` runs in ``bash``
  (with the venv's ``bin/`` first on ``PATH``), and the lines after it, up to the next ``$ ``,
  are its expected standard output.
- In expected output, ``...`` in a line matches any text in that place (doctest's ELLIPSIS);
  a line that is only ``...`` matches any number of lines, none included. Trailing whitespace
  is ignored. Machine-dependent parts (timings, formulation picks, paths) are written so.
- ``<!-- docs: skip -->`` on the line before a block leaves it unrun (say why on the page:
  a command for several hosts, say). ``bash`` and ``yaml`` blocks are never run.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib
import inspect
import io
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
API = DOCS / "api"
REFERENCE = DOCS / "reference"
ALLOWLIST = DOCS / "undocumented.txt"

#: The public modules: page name -> module. Each gets one API page.
MODULES = {
    "functional": "jaxconv.functional",
    "nnx": "jaxconv.nnx",
    "linen": "jaxconv.linen",
    "blocks": "jaxconv.blocks",
    "models": "jaxconv.models",
    "analysis": "jaxconv.analysis",
    "train": "jaxconv.train",
    "experiment": "jaxconv.experiment",
    "interop": "jaxconv.interop.torch",
    "data": "jaxconv.data",
    "bench": "jaxconv.bench",
    "environment": "jaxconv.environment",
}

SECTION = re.compile(r"^\s*([A-Z][A-Za-z ]*):\s*$", re.MULTILINE)


# --- 1. API pages ------------------------------------------------------------------------------

def public_names(module_name: str) -> list[str]:
    """A module's public names: its ``__all__``, else the public functions and classes it
    defines itself (not what it imports)."""
    module = importlib.import_module(module_name)
    if hasattr(module, "__all__"):
        return [n for n in module.__all__ if not inspect.ismodule(getattr(module, n))]
    return sorted(n for n, v in vars(module).items()
                  if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
                  and v.__module__ == module_name)


def api_page(page: str, module_name: str) -> str:
    module = importlib.import_module(module_name)
    summary = inspect.getdoc(module) or ""
    lines = [f"# `{module_name}`", "", summary, ""]
    for name in public_names(module_name):
        lines += [f"::: {module_name}.{name}", ""]
    return "\n".join(lines)


def write_api_pages() -> None:
    if API.exists():
        shutil.rmtree(API)
    API.mkdir()
    for page, module_name in MODULES.items():
        (API / f"{page}.md").write_text(api_page(page, module_name))


def pages_without_entries() -> list[str]:
    """Public names that no page under ``docs/api`` documents."""
    text = "\n".join(p.read_text() for p in API.glob("*.md"))
    entries = set(re.findall(r"^::: (\S+)$", text, re.MULTILINE))
    return [f"{m}.{n}: no API page" for m in MODULES.values() for n in public_names(m)
            if f"{m}.{n}" not in entries]


# --- 2. completeness ---------------------------------------------------------------------------

def sections(doc: str) -> set[str]:
    return {s.strip() for s in SECTION.findall(doc or "")}


def _own_doc(obj) -> str:
    """The object's own docstring; the one a dataclass or NamedTuple writes for itself
    (``Name(field, ...)``) counts as none."""
    doc = obj.__doc__ if isinstance(obj.__doc__, str) else ""
    if inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("):
        return ""
    return inspect.cleandoc(doc)


def _returns_value(function) -> bool | None:
    """Whether the function's own body returns a value (None: yields); falls back to the
    return annotation when the source cannot be read."""
    function = inspect.unwrap(function)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        annotation = inspect.signature(function).return_annotation
        return annotation not in (inspect.Signature.empty, None, "None")
    body = tree.body[0]

    def walk(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda |
                          ast.ClassDef):
                continue
            yield child
            yield from walk(child)

    nodes = list(walk(body))
    if any(isinstance(n, ast.Yield | ast.YieldFrom) for n in nodes):
        return None
    return any(isinstance(n, ast.Return) and n.value is not None and
               not (isinstance(n.value, ast.Constant) and n.value.value is None) for n in nodes)


def _parameters(obj) -> list[str]:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    return [p for p in signature.parameters if p not in ("self", "cls")]


def docstring_problems(obj, constant_doc: str | None = None) -> list[str]:
    """What a public name's docstring lacks. The rule:

    - every name has a docstring (a constant: a string right after its assignment);
    - a function with parameters has ``Args:``; one that returns a value ``Returns:``, one
      that yields ``Yields:`` (or ``Returns:``);
    - a class whose constructor takes arguments has ``Args:`` or ``Attributes:`` in its own
      docstring or its ``__init__``'s; an exception class needs only a docstring.
    """
    if inspect.isclass(obj):
        doc = _own_doc(obj)
        if not doc:
            return ["no docstring"]
        if issubclass(obj, BaseException) and "__init__" not in vars(obj):
            return []
        init = vars(obj).get("__init__")
        found = sections(doc) | sections(_own_doc(init) if init else "")
        if _parameters(obj) and not found & {"Args", "Attributes"}:
            return ["no Args: or Attributes: section"]
        return []
    if callable(obj):
        doc = _own_doc(obj)
        if not doc:
            return ["no docstring"]
        found, problems = sections(doc), []
        if _parameters(obj) and "Args" not in found:
            problems.append("no Args: section")
        returns = _returns_value(obj)
        if returns is None and not found & {"Yields", "Returns"}:
            problems.append("no Yields: section")
        elif returns and "Returns" not in found:
            problems.append("no Returns: section")
        return problems
    return [] if constant_doc else ["no docstring"]


def _constant_docs(module_name: str) -> dict[str, str]:
    """Attribute docstrings (a string statement right after ``NAME = ...``) of the module and
    of the modules its public constants come from, as mkdocstrings reads them."""
    import griffe

    package = griffe.load("jaxconv", resolve_aliases=True, resolve_external=False)
    module = package[module_name.removeprefix("jaxconv.")] if module_name != "jaxconv" \
        else package
    out = {}
    for name in public_names(module_name):
        try:
            member = module[name]
            doc = member.docstring
        except (KeyError, griffe.AliasResolutionError):
            continue
        if doc is not None and doc.value.strip():
            out[name] = doc.value
    return out


def completeness() -> list[str]:
    """Every public name without a page or with a docstring gap, as ``module.name: why``,
    against ``docs/undocumented.txt``."""
    allowed = set()
    if ALLOWLIST.exists():
        allowed = {line.split("#")[0].strip() for line in ALLOWLIST.read_text().splitlines()}
        allowed.discard("")
    offenders, gaps = pages_without_entries(), set()
    for module_name in MODULES.values():
        module = importlib.import_module(module_name)
        constants = None
        for name in public_names(module_name):
            obj = getattr(module, name)
            constant_doc = None
            if not callable(obj):
                if constants is None:
                    constants = _constant_docs(module_name)
                constant_doc = constants.get(name)
            problems = docstring_problems(obj, constant_doc)
            qualified = f"{module_name}.{name}"
            if problems:
                gaps.add(qualified)
                if qualified not in allowed:
                    offenders.append(f"{qualified}: {'; '.join(problems)}")
    offenders += [f"{name}: listed in docs/undocumented.txt but documented now (remove it)"
                  for name in sorted(allowed - gaps)]
    return offenders


# --- config reference --------------------------------------------------------------------------

def _recipe_help() -> dict[str, str]:
    """``Recipe``'s Attributes section as field -> text (``a, b: text`` gives both)."""
    from jaxconv.train import Recipe

    doc = _own_doc(Recipe)
    body = doc.split("Attributes:", 1)[1]
    out, current = {}, None
    for line in textwrap.dedent(body).splitlines():
        match = re.match(r"^(\w+(?:, \w+)*): (.*)$", line)
        if match:
            current = match.group(1).split(", ")
            for name in current:
                out[name] = match.group(2)
        elif current and line.strip():
            for name in current:
                out[name] += " " + line.strip()
    return out


def config_reference() -> str:
    """The config keys as a Markdown page, from the code."""
    from jaxconv.experiment import config
    from jaxconv.train import Recipe

    recipe_help = _recipe_help()
    lines = ["# Config reference", "",
             "Generated by `docs/build.py` from `jaxconv.experiment.config.KEY_HELP` and the "
             "fields and docstring of `jaxconv.train.Recipe`; the build fails when a key has no "
             "entry. Unknown keys and bad values are errors naming the key path and the closest "
             "valid key or the allowed values. See [Running a study](../guides/studies.md) for "
             "how a config runs.", ""]
    for section, keys in config.KEY_SECTIONS.items():
        lines += [f"## `{section}`" if section != "(top)" else "## Top level", "",
                  "| key | meaning |", "|---|---|"]
        lines += [f"| `{key}` | {config.KEY_HELP[section][key]} |" for key in keys]
        lines.append("")
    lines += ["## `train`", "",
              "The fields of `jaxconv.train.Recipe`, with their defaults.", "",
              "| key | default | meaning |", "|---|---|---|"]
    for field in dataclasses.fields(Recipe):
        help_text = recipe_help.get(field.name)
        if help_text is None:
            raise SystemExit(f"docs: Recipe.{field.name} has no entry in Recipe's Attributes")
        text = re.sub(r"`(jaxconv\.[\w.]+)`", r"`\1`", help_text).replace("|", "\\|")
        lines.append(f"| `{field.name}` | `{field.default!r}` | {text} |")
    return "\n".join(lines) + "\n"


def config_reference_problems() -> list[str]:
    from jaxconv.experiment import config

    problems = []
    for section, keys in config.KEY_SECTIONS.items():
        documented = set(config.KEY_HELP.get(section, {}))
        problems += [f"config key {section}.{k}: no entry in KEY_HELP"
                     for k in keys if k not in documented]
        problems += [f"KEY_HELP[{section!r}][{k!r}]: not a key of the config"
                     for k in documented - set(keys)]
    return problems


def write_reference() -> None:
    REFERENCE.mkdir(exist_ok=True)
    (REFERENCE / "config.md").write_text(config_reference())


# --- 3. guides ---------------------------------------------------------------------------------

@dataclasses.dataclass
class Block:
    kind: str          # "python", "console", "output" or another fence language
    code: str
    line: int          # 1-based line of the opening fence
    skip: bool = False


FENCE = re.compile(r"^```+\s*\{?\.?([\w-]*)")


def parse_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown page, in order."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence = re.match(r"^`+", lines[i]).group(0)
        kind = match.group(1) or "text"
        kind = "output" if kind in ("text", "output") else kind
        skip = i > 0 and lines[i - 1].strip() == "<!-- docs: skip -->"
        start, i = i, i + 1
        body = []
        while i < len(lines) and lines[i].rstrip() != fence:
            body.append(lines[i])
            i += 1
        blocks.append(Block(kind, "\n".join(body), start + 1, skip))
        i += 1
    return blocks


def _line_matches(pattern: str, line: str) -> bool:
    parts = pattern.split("...")
    if len(parts) == 1:
        return pattern == line
    regex = ".*".join(re.escape(p) for p in parts)
    return re.fullmatch(regex, line, re.DOTALL) is not None


def output_matches(expected: str, actual: str) -> bool:
    """Whether printed output matches the expected text: ``...`` inside a line matches any
    text; a line that is only ``...`` matches any number of lines. Trailing whitespace and
    trailing blank lines are ignored."""
    want = [line.rstrip() for line in expected.rstrip().splitlines()]
    got = [line.rstrip() for line in actual.rstrip().splitlines()]

    def match(i: int, j: int, memo: dict) -> bool:
        if (i, j) in memo:
            return memo[i, j]
        if i == len(want):
            result = j == len(got)
        elif want[i] == "...":
            result = any(match(i + 1, k, memo) for k in range(j, len(got) + 1))
        else:
            result = j < len(got) and _line_matches(want[i], got[j]) and \
                match(i + 1, j + 1, memo)
        memo[i, j] = result
        return result

    return match(0, 0, {})


class GuideError(Exception):
    """A guide's code failed or printed something else than the page says."""


def _mismatch(page: pathlib.Path, line: int, expected: str, actual: str) -> GuideError:
    return GuideError(f"{page.relative_to(ROOT)}:{line}: output differs\n--- expected\n"
                      f"{expected.rstrip()}\n--- printed\n{actual.rstrip()}")


def _console(page: pathlib.Path, block: Block, cwd: pathlib.Path) -> None:
    # the guides' commands run under the same strict JAX as their Python (`run_page`)
    env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}:{os.environ['PATH']}",
               JAX_NUMPY_RANK_PROMOTION="raise", JAX_NUMPY_DTYPE_PROMOTION="strict")
    commands: list[tuple[str, list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
        else:
            raise GuideError(f"{page.relative_to(ROOT)}:{block.line}: a console block starts "
                             "with a '$ ' command")
    for command, expected in commands:
        done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=600)
        if done.returncode:
            raise GuideError(f"{page.relative_to(ROOT)}:{block.line}: `{command}` exited "
                             f"{done.returncode}\n{done.stdout}\n{done.stderr}")
        if not output_matches("\n".join(expected), done.stdout):
            raise _mismatch(page, block.line, "\n".join(expected), done.stdout)


def run_page(page: pathlib.Path) -> None:
    """Runs one guide's blocks in a fresh folder; raises `GuideError` at the first failure.
    Its Python runs under the test suite's strict JAX: a silent rank or dtype promotion is an
    error, so the code paths only a guide reaches are held to the same rule."""
    import jax

    blocks = parse_blocks(page.read_text())
    with tempfile.TemporaryDirectory(prefix="jaxconv-docs-") as folder, \
            jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        cwd = pathlib.Path(folder)
        (cwd / "configs").symlink_to(ROOT / "configs")
        namespace = {"__name__": f"guide_{page.stem}"}
        before = os.getcwd()
        os.chdir(cwd)
        try:
            for index, block in enumerate(blocks):
                if block.skip:
                    continue
                if block.kind == "console":
                    _console(page, block, cwd)
                    continue
                if block.kind != "python":
                    continue
                printed = io.StringIO()
                try:
                    code = compile(block.code, f"{page.name}:{block.line}", "exec")
                    with contextlib.redirect_stdout(printed):
                        exec(code, namespace)
                except Exception:
                    raise GuideError(f"{page.relative_to(ROOT)}:{block.line}: the block "
                                     f"raised\n{traceback.format_exc()}") from None
                after = blocks[index + 1] if index + 1 < len(blocks) else None
                expected = after.code if after is not None and after.kind == "output" else ""
                if not output_matches(expected, printed.getvalue()):
                    raise _mismatch(page, block.line, expected, printed.getvalue())
        finally:
            os.chdir(before)


# --- 4. the site -------------------------------------------------------------------------------

def build_site() -> int:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean",
                           "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir",
                           str(ROOT / "site")], cwd=ROOT,
                          env=dict(os.environ, NO_MKDOCS_2_WARNING="1")).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-guides", action="store_true", help="skip running the guides")
    parser.add_argument("--only", default="", help="run only guides whose file name has this")
    parser.add_argument("--no-site", action="store_true", help="skip mkdocs build")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()

    write_api_pages()
    problems = config_reference_problems()
    if not problems:
        write_reference()
    problems += completeness()
    if problems:
        print("docs: public names without a page or with docstring gaps:", file=sys.stderr)
        print("\n".join(f"  {p}" for p in problems), file=sys.stderr)
        return 1
    print(f"docs: API pages and docstrings complete ({time.perf_counter() - started:.0f} s)")

    if not args.no_guides:
        for page in sorted((DOCS / "guides").glob("*.md")):
            if args.only not in page.name:
                continue
            t0 = time.perf_counter()
            try:
                run_page(page)
            except GuideError as error:
                print(f"docs: {error}", file=sys.stderr)
                return 1
            print(f"docs: {page.relative_to(ROOT)} ran and matched "
                  f"({time.perf_counter() - t0:.0f} s)")
    if not args.no_site:
        if build_site():
            print("docs: mkdocs build --strict failed", file=sys.stderr)
            return 1
        print(f"docs: site/index.html built ({time.perf_counter() - started:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
