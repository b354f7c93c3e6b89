"""Shared pieces of the kernel-family models: the hardware numbers ideals are measured against, a fitted
point, and the roofline ideal."""

from __future__ import annotations

from attrs import frozen

from dsocr_trace.kernels.query import Query


@frozen
class Hw:
    """What the ideals are relative to: achieved (or datasheet) peaks of one GPU."""

    tc_flops: float  # dense BF16 tensor-core FLOP/s
    mem_bw: float  # device-memory B/s (read + written)
    sm_count: int
    floor_s: float = 2.0e-6  # shortest kernel, start to end, for an op no curve covers


@frozen
class Point:
    """One timed op of the calibration sweep."""

    q: Query
    seconds: float
    kernels: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


@frozen
class Estimate:
    seconds: float
    compute_s: float  # ideal tensor-core time (quantized where the family knows tiles)
    memory_s: float  # ideal memory time
    efficiency: float  # ideal / seconds on the binding side
    how: str  # "class", "nearest-class", "pattern", "kind", "roofline"
    tile: tuple[int, int] | None = None  # (tm, tn) of the kernel the family assumed, where it knows tiles
    split_kv: bool = False  # decode attention: the library split the keys over the SMs (a combine kernel ran)


def roofline(q: Query, hw: Hw) -> tuple[float, float]:
    """(compute, memory) seconds at the peaks, no efficiency."""
    return q.tc_flops / hw.tc_flops, q.bytes / hw.mem_bw
