"""Interpolation in log-size space, shared by the kernel families.

`LogCurve`: y(x) piecewise linear in log10(x) between measured points, held at the ends. `Scatter`: the same
over several size features when a class's points vary in more than one (inverse-distance weighting of the
nearest points in log space; a feature constant over the class is ignored).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence


class LogCurve:
    """Points (x > 0, y), duplicates of x merged by their median; `at(x)` interpolates y in log10(x)."""

    def __init__(self, points: Sequence[tuple[float, float]]) -> None:
        merged: dict[float, list[float]] = {}
        for x, y in points:
            if x > 0 and math.isfinite(y):
                merged.setdefault(float(x), []).append(float(y))
        if not merged:
            raise ValueError("a curve needs at least one point")
        xs = sorted(merged)
        self.x = xs
        self.lx = [math.log10(x) for x in xs]
        self.y = [statistics.median(merged[x]) for x in xs]

    def at(self, x: float) -> float:
        i0, i1, f = self.bracket(x)
        return self.y[i0] + f * (self.y[i1] - self.y[i0])

    def bracket(self, x: float) -> tuple[int, int, float]:
        """(i0, i1, f): the measured points around x and x's position between them in log space (0 at i0, 1 at
        i1); both the end point outside the range."""
        lx = math.log10(max(x, 1e-30))
        i = bisect.bisect_left(self.lx, lx)
        if i <= 0:
            return 0, 0, 0.0
        if i >= len(self.lx):
            return len(self.lx) - 1, len(self.lx) - 1, 0.0
        x0, x1 = self.lx[i - 1], self.lx[i]
        return i - 1, i, (lx - x0) / (x1 - x0) if x1 > x0 else 0.0

    def nearest(self, x: float) -> int:
        """Index of the measured point closest to x in log space."""
        lx = math.log10(max(x, 1e-30))
        i = bisect.bisect_left(self.lx, lx)
        if i <= 0:
            return 0
        if i >= len(self.lx):
            return len(self.lx) - 1
        return i if self.lx[i] - lx < lx - self.lx[i - 1] else i - 1


class Scatter:
    """y over several size features. Features constant over the points, or equal to an earlier feature at every
    point (self-attention's query and key lengths), are dropped; the rest are interpolated one after the other:
    the points are grouped by the first feature's value, each group interpolated over the remaining features,
    and the two groups around the query combined linearly in log10 of the first feature (held outside the
    measured range). On a grid this is multilinear interpolation in log space."""

    def __init__(self, points: Sequence[tuple[tuple[float, ...], float]]) -> None:
        if not points:
            raise ValueError("no points")
        n = len(points[0][0])
        cols = [[xs[d] for xs, _ in points] for d in range(n)]
        keep: list[int] = []
        for d in range(n):
            if len(set(cols[d])) <= 1 or any(cols[d] == cols[e] for e in keep):
                continue
            keep.append(d)
        self.dims = keep
        self.tree = _Nested([(tuple(xs[d] for d in keep), y) for xs, y in points])

    def at(self, x: Sequence[float]) -> float:
        return self.tree.at(tuple(x[d] for d in self.dims))


class _Nested:
    def __init__(self, points: Sequence[tuple[tuple[float, ...], float]]) -> None:
        self.leaf: float | None = None
        self.curve: LogCurve | None = None
        self.keys: list[float] = []
        self.children: list[_Nested] = []
        if not points[0][0]:
            self.leaf = statistics.median(y for _, y in points)
            return
        if len(points[0][0]) == 1:
            self.curve = LogCurve([(xs[0], y) for xs, y in points])
            return
        groups: dict[float, list[tuple[tuple[float, ...], float]]] = {}
        for xs, y in points:
            groups.setdefault(xs[0], []).append((xs[1:], y))
        self.keys = sorted(groups)
        self.lkeys = [math.log10(max(k, 1e-30)) for k in self.keys]
        self.children = [_Nested(groups[k]) for k in self.keys]

    def at(self, x: tuple[float, ...]) -> float:
        if self.leaf is not None:
            return self.leaf
        if self.curve is not None:
            return self.curve.at(x[0])
        lx = math.log10(max(x[0], 1e-30))
        i = bisect.bisect_left(self.lkeys, lx)
        if i <= 0:
            return self.children[0].at(x[1:])
        if i >= len(self.lkeys):
            return self.children[-1].at(x[1:])
        x0, x1 = self.lkeys[i - 1], self.lkeys[i]
        f = (lx - x0) / (x1 - x0)
        return (1 - f) * self.children[i - 1].at(x[1:]) + f * self.children[i].at(x[1:])
