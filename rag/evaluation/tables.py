"""Markdown tables: the one way every evaluation table is drawn for the terminal and report.md."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def fmt(value: Any) -> str:
    """A cell: floats to three decimals, None and NaN as an en dash, anything else as text."""
    if value is None or value != value:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[str]], align: str) -> str:
    """A pipe table; `align` has one letter per column, `l` (text) or `r` (numbers)."""
    if len(align) != len(head) or set(align) - {"l", "r"}:
        raise ValueError(f"align '{align}' does not give l or r for each of {len(head)} columns")
    lines = ["| " + " | ".join(head) + " |", "|" + "".join("---:|" if a == "r" else "---|" for a in align)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
