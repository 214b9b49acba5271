"""Markdown tables: the one formatter behind every table kagglekit prints or writes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]], digits: int | Sequence[int | None] = 1) -> str:
    """`| a | b |` rows; the first column is left-aligned text, the others right-aligned numbers
    formatted with `digits` decimals (one value for all columns or one per column; None = str)."""
    per_col = [digits] * len(header) if isinstance(digits, int) else list(digits)
    if len(per_col) != len(header):
        raise ValueError(f"{len(per_col)} digit settings for {len(header)} columns")

    def cell(value: Any, d: int | None) -> str:
        if isinstance(value, str) or d is None or value is None:
            return str(value)
        if isinstance(value, (int,)) and not isinstance(value, bool):
            return f"{value:,}" if abs(value) >= 10_000 else str(value)
        return f"{float(value):.{d}f}"

    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        lines.append("| " + " | ".join(cell(v, per_col[k]) for k, v in enumerate(row)) + " |")
    return "\n".join(lines)
