"""Markdown pieces the report writers share: tables, tensor shapes, the report's predictions section."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> list[str]:
    """A GitHub Markdown table; `align` is one 'l'/'r' per column (default: first left, rest right)."""
    al = align or "l" + "r" * (len(headers) - 1)
    sep = ["---" if a == "l" else "---:" for a in al]
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return out


def predictions_of(report: Mapping[str, Any]) -> dict[str, Any]:
    """The report's `predictions` section, or {} without a device."""
    p = report.get("predictions")
    return p if isinstance(p, dict) else {}


def shape_text(shapes: Any) -> str:
    """[[1, 10, 286, 128], [128]] -> '1x10x286x128; 128' (scalars and empty shapes as '()')."""
    if shapes is None:
        return ""
    if isinstance(shapes, str):
        return shapes
    parts = []
    for s in shapes:
        if isinstance(s, list | tuple):
            parts.append("x".join(str(d) for d in s) if s else "()")
        else:
            parts.append(str(s))
    return "; ".join(parts)
