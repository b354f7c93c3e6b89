"""Memory-bound kernels (element-wise, broadcasts, transposing copies, casts, cats, norms, reductions,
gathers, sorts, fills, fused chains): time over bytes moved.

Per class (op, cost kind, access pattern, dtypes: kernels.query) the measured times form a curve of log time
over log bytes: interpolated between the neighbouring sizes; below the smallest size the time holds (the
kernel's floor: launch, one wave, teardown); above the largest it grows with the bytes (the bandwidth the
two largest points reached holds). The access pattern (contiguous, transposing read, broadcast operand; whether the
footprint sits in L2 shows in the curve's bend) is part of the class, so SAM's rel-pos bias add (a broadcast of
two thin tensors into a wide one, ~0.4 TB/s) has its own curve.

The class curve is drawn through the ops of the calibration workloads when the class has any (the model's own
ops at other sizes); the synthetic ladders shape the coarser groupings a class never measured falls back on:
(op, kind, pattern) -> (op, kind) -> (kind, pattern) -> (kind).

Multi-tensor ops (`_foreach_*`, fused optimizers) launch one kernel per group of tensors or chunks
(costs.optimizer.multi_tensor_launches): their curves are per launch (bytes and seconds divided by the
launches), so a list of many small tensors (LoRA) and one of a few large ones read the same curve at the size
each launch really moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dsocr_trace.kernels.base import Estimate, Hw, Point, roofline
from dsocr_trace.kernels.interp import LogCurve
from dsocr_trace.kernels.query import Query


def _levels(cls: tuple[object, ...]) -> list[tuple[object, ...]]:
    op, kind, pattern, dtypes = cls
    return [("c", op, kind, pattern, dtypes), ("p", op, kind, pattern), ("o", op, kind), ("k", kind, pattern),
            ("k", kind)]


MULTI_TENSOR_PREFIXES = ("aten._foreach_", "aten._fused_")


def launches_of(q: Query) -> int:
    """Kernels a memory-bound query's curve counts it in: its launches for a multi-tensor op, else 1."""
    return max(1, q.kernels) if str(q.cls[0]).startswith(MULTI_TENSOR_PREFIXES) else 1


class _TimeCurve:
    """log time over log bytes, held below; above the largest measured size each further byte streams at the
    marginal bandwidth of the two largest points (clipped to 2-100% of the measured copy bandwidth; 70% when
    the points do not tell: a single point, or a flat, launch-bound tail)."""

    def __init__(self, pts: list[tuple[float, float]], bw: float) -> None:
        self.curve = LogCurve([(x, math.log10(t)) for x, t in pts])
        c = self.curve
        marginal = 0.7 * bw
        if len(c.x) >= 2:
            dx, dt = c.x[-1] - c.x[-2], 10 ** c.y[-1] - 10 ** c.y[-2]
            if dx > 0 and dt > 0:
                marginal = min(bw, max(0.02 * bw, dx / dt))
        self.marginal_bw = marginal

    def at(self, x: float) -> float:
        c = self.curve
        if x > c.x[-1]:
            return float(10 ** c.y[-1] + (x - c.x[-1]) / self.marginal_bw)
        return float(10 ** c.at(x))


class MemoryFamily:
    def __init__(self, points: Sequence[Point], hw: Hw) -> None:
        self.hw = hw
        groups: dict[tuple[object, ...], list[tuple[float, float, bool]]] = {}
        for p in points:
            if p.q.family == "memory" and p.seconds > 0 and p.q.cls[0] != "fused":
                traced = not any(s.startswith("sweep:") for s in p.sources)
                streaming = set(str(p.q.cls[2]).split("/")[0]) <= {"f", "s"}
                per = launches_of(p.q)
                for lv in _levels(p.q.cls):
                    if lv[0] == "k" and len(lv) == 2 and not streaming:
                        continue  # a kind's last resort is its contiguous, streaming kernels
                    groups.setdefault(lv, []).append((p.q.x[0] / per, p.seconds / per, traced))
        self.curves = {}
        for k, v in groups.items():
            if k[0] == "c" and any(t for _, _, t in v):
                v = [r for r in v if r[2]]
            self.curves[k] = _TimeCurve([(x, s) for x, s, _ in v], hw.mem_bw)

    def predict(self, q: Query) -> Estimate | None:
        levels = _levels(q.cls) if q.cls[0] != "fused" else [("k", q.cls[1], q.cls[2]), ("k", q.cls[1])]
        for i, lv in enumerate(levels):
            curve = self.curves.get(lv)
            if curve is None:
                continue
            per = launches_of(q) if q.cls[0] != "fused" else 1
            sec = curve.at(q.x[0] / per) * per
            c, m = roofline(q, self.hw)
            how = ("class", "pattern", "op", "kind-pattern", "kind")[i] if q.cls[0] != "fused" else \
                ("kind-pattern", "kind")[i]
            return Estimate(sec, c, m, m / sec if sec > 0 else 0.0, how)
        return None
