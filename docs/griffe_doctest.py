"""A griffe extension for the API pages: fences the doctest examples of jaxconv's docstrings.

jaxconv's docstrings hold their examples as bare ``>>>`` lines (doctest runs them), which
Markdown would render as nested quotes. Each run of ``>>>`` / ``...`` lines and the expected
output after them, up to a blank line, becomes a ``pycon`` code block.
"""

from __future__ import annotations

import re

import griffe

PROMPT = re.compile(r"^(\s*)>>> ")


def fence_doctests(text: str) -> str:
    """The docstring with each doctest example in a fenced ``pycon`` block."""
    lines, out, i, inside = text.splitlines(), [], 0, False
    while i < len(lines):
        if lines[i].lstrip().startswith("```"):
            inside = not inside
        match = None if inside else PROMPT.match(lines[i])
        if not match:
            out.append(lines[i])
            i += 1
            continue
        indent = match.group(1)
        block = []
        while i < len(lines) and lines[i].strip():
            block.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
            i += 1
        out += [f"{indent}```pycon", *(f"{indent}{line}" for line in block), f"{indent}```"]
    return "\n".join(out)


class FenceDoctests(griffe.Extension):
    """Fences doctest examples in every docstring griffe reads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None and ">>> " in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
