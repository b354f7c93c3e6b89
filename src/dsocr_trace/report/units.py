"""Quantities as text and numbers, one way for every writer."""

from __future__ import annotations

import math
from typing import Any


def num(x: Any) -> float:
    """x as a finite float; anything else (None, text, NaN, inf) as 0."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def si(x: Any, unit: str, digits: int = 2) -> str:
    """x with the largest SI prefix (k to P) it reaches: 1.5e12, 'FLOP' -> '1.50 TFLOP'; 12, 'B' -> '12 B'."""
    v = num(x)
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:,.{digits}f} {prefix}{unit}"
    return f"{v:,.0f} {unit}" if v == int(v) else f"{v:,.{digits}f} {unit}"


def gib(x: float) -> str:
    """Bytes in GiB, two decimals, without the unit: every output shows memory in GiB."""
    return f"{x / 2**30:,.2f}"


def ms(seconds: Any, digits: int = 3) -> str:
    """Seconds as milliseconds text."""
    return f"{num(seconds) * 1e3:,.{digits}f}"


def ms_value(seconds: Any) -> float | str:
    """Seconds as a millisecond number for a table cell; None as an empty cell."""
    return "" if seconds is None else num(seconds) * 1e3


def intensity(flops: float, nbytes: float) -> float:
    """FLOP per byte; 0 when nothing moves."""
    return flops / nbytes if nbytes else 0.0
