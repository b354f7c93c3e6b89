"""MoE grouped GEMM (torch._grouped_mm: CUTLASS ptr-array kernels on Hopper): time = ideal / efficiency.

Ideal: max(compute, memory). Compute is wave-quantized over the experts' own tiles: every expert with rows
gets ceil(rows_e / tm) * ceil(N / tn) tiles of the kernel's tile (the cooperative kernel tiles 128 x 256, the
ping-pong kernel 64 x 128: the kernel name says which), waves = ceil(tiles / SMs). Memory: the weights of the
experts touched plus the activations (the cost rule's bytes). Rows per expert come from the routing the
prediction assumes (costs.routing), or the one a calibration point was measured with.

Efficiency per class (N, K) over (total rows, 1 + imbalance), imbalance = the coefficient of variation of
the rows per expert (0 for a perfectly balanced router, ~1.5 for a random-weight one): interpolated in log
space between measured points (kernels.interp.Scatter). Calibration points without a recorded routing (evenly
cut groups) are left out of the fit: the sweep's ladders state their routing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from dsocr_trace.kernels.base import Estimate, Hw, Point, roofline
from dsocr_trace.kernels.interp import LogCurve, Scatter
from dsocr_trace.kernels.query import Query

COOPERATIVE, PINGPONG = (128, 256), (64, 128)


def tile_of(kernels: Sequence[str]) -> tuple[int, int]:
    for name in kernels:
        if "Pingpong" in name:
            return PINGPONG
        if "Cooperative" in name:
            return COOPERATIVE
    return COOPERATIVE


def ideal(q: Query, hw: Hw, tile: tuple[int, int]) -> tuple[float, float]:
    rows, n, k = q.detail if q.detail else ((), 0, 0)
    _, mem = roofline(q, hw)
    if not rows:
        return q.tc_flops / hw.tc_flops, mem
    tm, tn = tile
    tiles = sum(math.ceil(r / tm) for r in rows if r > 0) * math.ceil(n / tn)
    waves = math.ceil(tiles / hw.sm_count)
    return waves * 2.0 * tm * tn * k / (hw.tc_flops / hw.sm_count), mem


def imbalance(rows: Sequence[int]) -> float:
    """Coefficient of variation of the rows per expert."""
    if not rows:
        return 0.0
    mean = sum(rows) / len(rows)
    if mean <= 0:
        return 0.0
    return math.sqrt(sum((r - mean) ** 2 for r in rows) / len(rows)) / mean


def features(q: Query) -> tuple[float, float]:
    rows = q.detail[0] if q.detail else ()
    return q.x[0], 1.0 + imbalance(rows)


class GroupedFamily:
    def __init__(self, points: Sequence[Point], hw: Hw) -> None:
        self.hw = hw
        groups: dict[tuple[object, ...], list[tuple[tuple[float, float], float, tuple[int, int]]]] = {}
        mine = [p for p in points if p.q.family == "grouped_gemm" and p.seconds > 0]
        stated = [p for p in mine if any(s.startswith("sweep:") for s in p.sources)]
        for p in stated or mine:  # even-cut points only when no sweep stated its routing (older profiles)
            tile = tile_of(p.kernels)
            c, m = ideal(p.q, hw, tile)
            groups.setdefault(p.q.cls, []).append((features(p.q), max(c, m) / p.seconds, tile))
        self.classes: dict[tuple[object, ...], tuple[Scatter, LogCurve, list[tuple[int, int]]]] = {}
        for cls, pts in groups.items():
            pts.sort(key=lambda r: r[0][0])
            tiles = LogCurve([(x[0], float(i)) for i, (x, _, _) in enumerate(pts)])
            self.classes[cls] = (Scatter([(x, e) for x, e, _ in pts]), tiles, [t for _, _, t in pts])

    def predict(self, q: Query) -> Estimate | None:
        hit = self.classes.get(q.cls)
        how = "class"
        if hit is None:
            if not self.classes:
                return None
            n, k = q.cls
            best = min(self.classes, key=lambda c: (math.log(c[0] / n)) ** 2 + (math.log(c[1] / k)) ** 2)  # type: ignore[operator]
            hit, how = self.classes[best], "nearest-class"
        scatter, order, tiles = hit
        eff = scatter.at(features(q))
        tile = tiles[int(order.y[order.nearest(q.x[0])])]
        c, m = ideal(q, self.hw, tile)
        return Estimate(max(c, m) / max(eff, 1e-6), c, m, eff, how, tile)
