"""Markdown tables for the reports built on the analysis (`retention_table`, the experiment
report's results table): one function, so every table is written the same way. Plain-text
tables for the terminal (`Summary.table`) align their columns and live with their data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[str], align: str, rows: Iterable[Sequence[str]]) -> str:
    """A markdown table: the ``header`` cells, then one line per row of ``rows`` (cells already
    formatted). ``align`` has one letter per column: ``l`` left, ``r`` right.

    >>> print(markdown_table(["name", "count"], "lr", [["a", "1"], ["b", "22"]]))
    | name | count |
    |---|---:|
    | a | 1 |
    | b | 22 |
    """
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align={align!r}: expected one of 'l' or 'r' per header cell "
                         f"({len(header)})")
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    return "\n".join(["| " + " | ".join(header) + " |", rule,
                      *("| " + " | ".join(row) + " |" for row in rows)])
