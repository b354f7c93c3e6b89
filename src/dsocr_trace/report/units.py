"""Quantities as text, one way for every writer."""

from __future__ import annotations


def si(x: float, unit: str) -> str:
    """x with the largest SI prefix (k to P) it reaches, two decimals: 1.5e12 FLOP -> '1.50 TFLOP'."""
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:,.2f} {prefix}{unit}"
    return f"{x:,.0f} {unit}"


def gib(x: float) -> str:
    """Bytes in GiB, two decimals, without the unit: every output shows memory in GiB."""
    return f"{x / 2**30:,.2f}"
