"""The latency model: one kernel-family model per family, fitted on a calibration sweep's points.

`PerfModel.estimate(query)` asks the query's family; a family that has no curve for it answers None and the
caller (predict.kernel_time) falls back to the datasheet roofline. `points_of` turns a profile's sweep
points (operator-benchmark specs with measured seconds and kernel names) into fitted Points, through the same
cost rules and queries a traced node goes through.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from attrs import evolve

from dsocr_trace.costs.base import DEFAULT_OPTIONS, cost_of
from dsocr_trace.kernels.attention import AttentionFamily
from dsocr_trace.kernels.base import Estimate, Hw, Point
from dsocr_trace.kernels.gemm import GemmFamily
from dsocr_trace.kernels.grouped import GroupedFamily
from dsocr_trace.kernels.inmodel import bucket_of
from dsocr_trace.kernels.memory import MemoryFamily
from dsocr_trace.kernels.query import Query, node_of_spec, query_of


class PerfModel:
    def __init__(self, points: Iterable[Point], hw: Hw, use_tiles: bool = True,
                 factors: Mapping[str, float] | None = None) -> None:
        pts = list(points)
        self.hw = hw
        self.factors = dict(factors or {})
        self.n_points = len(pts)
        self.families: dict[str, Any] = {
            "gemm": GemmFamily("gemm", pts, hw, use_tiles),
            "conv": GemmFamily("conv", pts, hw, use_tiles),
            "grouped_gemm": GroupedFamily(pts, hw),
            "attention": AttentionFamily(pts, hw),
            "memory": MemoryFamily(pts, hw),
        }

    def standalone(self, q: Query) -> Estimate | None:
        """The op's time as the operator benchmark would measure it alone."""
        fam = self.families.get(q.family)
        return fam.predict(q) if fam is not None else None

    def estimate(self, q: Query) -> Estimate | None:
        """The op's time inside the model: the standalone estimate times its in-model factor."""
        e = self.standalone(q)
        if e is None or not self.factors:
            return e
        f = self.factors.get(bucket_of(q, e), 1.0)
        return evolve(e, seconds=e.seconds * f, efficiency=e.efficiency / f)


def points_of(sweep_points: Mapping[str, Mapping[str, Any]], exclude_sources: Iterable[str] = ()) -> list[Point]:
    """Fitted Points of a profile's sweep. `exclude_sources`: drop points measured only for these calibration
    workloads (a leave-one-out fit); synthetic ladder points stay."""
    drop = set(exclude_sources)
    out = []
    for spec in sweep_points.values():
        srcs = tuple(spec.get("sources") or ())
        if drop and srcs and set(srcs) <= drop:
            continue
        node = node_of_spec(dict(spec))
        cost = cost_of(node, DEFAULT_OPTIONS)
        if cost is None or cost.kernels <= 0:
            continue
        out.append(Point(query_of(node, cost), float(spec["seconds"]), tuple(spec.get("kernels") or ()), srcs))
    return out


# bump when queries, cost rules or Point change: cached points of an older derivation are not reused
DERIVATION = "3"


def _cache_dir() -> Path | None:
    import os

    base = os.environ.get("DSOCR_TRACE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "dsocr-trace")
    try:
        Path(base).mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return Path(base)


_POINTS: dict[str, list[Point]] = {}


def cached_points(sweep_points: Mapping[str, Mapping[str, Any]]) -> list[Point]:
    """points_of(sweep_points), remembered in this process and on disk (keyed by the sweep's content and
    DERIVATION): deriving them runs every spec through the meta device and the cost rules (seconds)."""
    import hashlib
    import pickle

    import orjson

    key = hashlib.sha1(orjson.dumps(sweep_points, option=orjson.OPT_SORT_KEYS) + DERIVATION.encode()).hexdigest()
    hit = _POINTS.get(key)
    if hit is not None:
        return hit
    d = _cache_dir()
    f = d / f"points-{key}.pkl" if d is not None else None
    if f is not None and f.is_file():
        try:
            pts = pickle.loads(f.read_bytes())
            _POINTS[key] = pts
            return pts  # type: ignore[no-any-return]
        except Exception:  # a stale or broken cache file: derive again
            pass
    pts = points_of(sweep_points)
    _POINTS[key] = pts
    if f is not None:
        try:
            tmp = f.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(pickle.dumps(pts))
            tmp.replace(f)
        except OSError:
            pass
    return pts
