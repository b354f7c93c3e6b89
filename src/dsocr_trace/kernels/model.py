"""The latency model: one kernel-family model per family, fitted on a calibration sweep's points.

`PerfModel.estimate(query)` asks the query's family; a family that has no curve for it answers None and the
caller (predict.kernel_time) falls back to the datasheet roofline. `points_of` turns a profile's sweep
points (operator-benchmark specs with measured seconds and kernel names) into fitted Points, through the same
cost rules and queries a traced node goes through.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from attrs import evolve

from dsocr_trace.costs.base import DEFAULT_OPTIONS, cost_of
from dsocr_trace.kernels.attention import AttentionFamily
from dsocr_trace.kernels.base import Estimate, Hw, Point
from dsocr_trace.kernels.gemm import GemmFamily
from dsocr_trace.kernels.grouped import GroupedFamily
from dsocr_trace.kernels.inmodel import bucket_of
from dsocr_trace.kernels.memory import MemoryFamily
from dsocr_trace.kernels.query import Query, node_of_spec, query_of

if TYPE_CHECKING:
    from dsocr_trace.hardware.profile import Profile


class PerfModel:
    def __init__(self, points: Iterable[Point], hw: Hw, use_tiles: bool = True,
                 factors: Mapping[str, float] | None = None) -> None:
        pts = list(points)
        self.hw = hw
        self.factors = dict(factors or {})
        self.n_points = len(pts)
        self._memo: dict[Query, Estimate | None] = {}  # a model's layers repeat the same queries
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
        try:
            return self._memo[q]
        except KeyError:
            pass
        except TypeError:  # a query with an unhashable detail: not remembered
            return self._estimate(q)
        if len(self._memo) > 200_000:
            self._memo.clear()
        e = self._memo[q] = self._estimate(q)
        return e

    def _estimate(self, q: Query) -> Estimate | None:
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


_POINTS: dict[str, list[Point]] = {}


def cached_points(sweep_points: Mapping[str, Mapping[str, Any]]) -> list[Point]:
    """points_of(sweep_points), remembered in this process and on disk (keyed by the sweep's content and the
    code that derives points): deriving them runs every spec through the meta device and the cost rules."""
    from dsocr_trace import cache as disk_cache

    key = disk_cache.key_of(sweep_points, disk_cache.code_fingerprint("costs", "kernels", "trace"))
    hit = _POINTS.get(key)
    if hit is not None:
        return hit
    pts = disk_cache.load("points", key)
    if pts is None:
        pts = points_of(sweep_points)
        disk_cache.store("points", key, pts)
    _POINTS[key] = pts
    return pts  # type: ignore[no-any-return]


def perf_model(profile: Profile) -> PerfModel | None:
    """The kernel-family latency model fitted on a profile's sweep (None for a datasheet profile), built once and
    kept in the profile's cache. Fitted against the card it was measured on: a transferred profile carries the
    estimates to its target afterwards (predict.kernel_time)."""
    if not profile.sweep:
        return None
    if not profile.cache:
        t = profile.transfer
        hw = Hw(tc_flops=t.src.tc_flops, mem_bw=t.src.mem_bw, sm_count=t.src.sm_count, floor_s=t.src.floor_s) \
            if t is not None else Hw(tc_flops=profile.tc_flops, mem_bw=profile.mem_bw, sm_count=profile.sm_count,
                                     floor_s=profile.launch_s)
        profile.cache.append(PerfModel(cached_points(profile.sweep), hw, factors=profile.factors))
    model: PerfModel = profile.cache[0]
    return model
