"""Vectorized pricing and replay: `predict.kernel_time` and `predict.replay` over whole plans with numpy.

A plan's Costs become arrays once (`arrays_of`, device-independent); `device_times` then prices every item on
a device in a handful of numpy operations, and `replay_wall` gives the two-lane replay's wall time from prefix
sums. Both agree with the scalar functions to rounding (~1e-12 relative): the sweep re-costs cached traces on
many devices with them.

Eager replay in closed form. With H = cumsum(host) and C = cumsum(device) (C_{-1} = 0), kernel n ends at
    end_n = C_n + max_{j <= n} (H_j - C_{j-1})
as long as no sync intervenes. A sync item ends a segment: the host waits for its kernel, so the next segment
starts with host = max(host, end). Since host times are >= 0, the device is never ahead of the host at a
segment start, and each segment [a, b] adds max(H_b, C_b + max_{a <= j <= b} (H_j - C_{j-1})) - H_{a-1} to
the host clock; the wall is the sum of those increments over all segments (the last one need not end in a
sync: its increment is max(host end, device end) - its start just the same).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from attrs import evolve, frozen

from dsocr_trace.costs import Cost, NodeCosts
from dsocr_trace.hardware.profile import (
    DEFAULT_GRAPH_KERNEL_S,
    DEFAULT_GRAPH_LAUNCH_S,
    TENSOR_CORE_KINDS,
    GemmEntry,
    Profile,
)
from dsocr_trace.hardware.spec import DeviceSpec
from dsocr_trace.plan import Item, host_calls
from dsocr_trace.predict import _DTYPE_PEAK, _is_strided, nearest_gemm, replay
from dsocr_trace.trace.ir import OpNode, Trace
from dsocr_trace.trace.opkey import op_key


class PricedArrays:
    """A list of Costs as arrays (device-independent): what `device_times` needs to price them anywhere.

    Entries that are None (uncosted ops), views, syncs and zero-kernel ops are `free` (device time 0).
    `key_nodes` optionally names, per entry, the node whose operator-benchmark key (`trace.opkey.op_key`) the
    scalar path would look up in `Profile.op_table`; the keys are hashed only when a profile has such a table.
    """

    def __init__(self, costs: Sequence[Cost | None], key_nodes: Sequence[OpNode | None] | None = None) -> None:
        n = len(costs)
        self.costs: list[Cost | None] = list(costs)
        self.n = n
        self.key_nodes: list[OpNode | None] = list(key_nodes) if key_nodes is not None else [None] * n
        if len(self.key_nodes) != n:
            raise ValueError("key_nodes must have one entry per cost")
        self._keys: list[str | None] | None = None
        self._hits: tuple[dict[str, float], np.ndarray, np.ndarray] | None = None
        self._gemms: tuple[tuple[GemmEntry, ...], np.ndarray, np.ndarray] | None = None

        kinds: dict[str, int] = {}
        dtypes: dict[str, int] = {}
        kind = np.full(n, -1, dtype=np.int64)
        dtype = np.zeros(n, dtype=np.int64)
        tc = np.zeros(n)
        cc = np.zeros(n)
        nbytes = np.zeros(n)
        kernels = np.zeros(n)
        strided = np.zeros(n, dtype=bool)
        free = np.ones(n, dtype=bool)
        mnk = np.zeros((n, 3), dtype=np.int64)  # 0 where the cost has no valid m/n/k
        for i, c in enumerate(costs):
            if c is None:
                continue
            kind[i] = kinds.setdefault(c.kind, len(kinds))
            dtype[i] = dtypes.setdefault(_DTYPE_PEAK.get(str(c.shape.get("dtype", "bf16")), "bf16"), len(dtypes))
            tc[i], cc[i], nbytes[i], kernels[i] = c.tc_flops, c.cc_flops, c.bytes, c.kernels
            strided[i] = _is_strided(c)
            free[i] = c.kind in ("view", "sync") or c.kernels <= 0
            if c.kind == "gemm":
                try:
                    m, nn, k = (int(c.shape[d]) for d in ("m", "n", "k"))
                except (KeyError, TypeError, ValueError):
                    continue
                if min(m, nn, k) > 0:
                    mnk[i] = (m, nn, k)
        self.kinds = tuple(kinds)  # kind index -> name
        self.dtype_keys = tuple(dtypes)  # dtype index -> DeviceSpec.peaks_by_dtype key
        self.kind = kind
        self.dtype = dtype
        self.tc, self.cc, self.nbytes, self.kernels = tc, cc, nbytes, kernels
        self.strided = strided
        self.free = free
        with np.errstate(divide="ignore"):
            self.log_tc = np.log10(np.where(tc > 0, tc, 1.0))
            self.log_cc = np.log10(np.where(cc > 0, cc, 1.0))
            self.log_bytes = np.log10(np.where(nbytes > 0, nbytes, 1.0))
        timed = ~free
        # per kind present: the indices of the timed items of that kind
        self.by_kind: list[tuple[str, np.ndarray]] = [
            (name, np.flatnonzero(timed & (kind == k))) for name, k in kinds.items()]
        self.by_kind = [(name, idx) for name, idx in self.by_kind if idx.size]
        # GEMMs a measured table could price: unique (m, n, k) and each item's row in it
        gemm = timed & (kind == kinds.get("gemm", -2)) & (tc > 0) & (mnk[:, 0] > 0)
        self.gemm_idx = np.flatnonzero(gemm)
        if self.gemm_idx.size:
            uniq, inv = np.unique(mnk[self.gemm_idx], axis=0, return_inverse=True)
            self.gemm_shapes = [tuple(int(x) for x in row) for row in uniq]
            self.gemm_inverse = inv.reshape(-1)
        else:
            self.gemm_shapes, self.gemm_inverse = [], np.zeros(0, dtype=np.int64)

    def op_keys(self) -> list[str | None]:
        """Per entry, the op_table key the scalar path would look up (None: none)."""
        if self._keys is None:
            self._keys = [op_key(nd) if nd is not None else None for nd in self.key_nodes]
        return self._keys

    def gemm_lookup(self, table: tuple[GemmEntry, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Per distinct GEMM shape, the nearest measured entry's (seconds, 2*m*n*k); kept for the last table."""
        if self._gemms is not None and self._gemms[0] is table:
            return self._gemms[1], self._gemms[2]
        sec = np.empty(len(self.gemm_shapes))
        flops = np.empty(len(self.gemm_shapes))
        for u, (m, n, k) in enumerate(self.gemm_shapes):
            g = nearest_gemm(table, m, n, k)
            sec[u], flops[u] = g.seconds, 2.0 * g.m * g.n * g.k
        self._gemms = (table, sec, flops)
        return sec, flops

    def op_hits(self, table: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
        """(indices, measured seconds) of the entries an operator-benchmark table covers; the last table's
        answer is kept (by identity)."""
        if self._hits is not None and self._hits[0] is table:
            return self._hits[1], self._hits[2]
        keys = self.op_keys()
        found = [(i, table[k]) for i, k in enumerate(keys)
                 if k is not None and self.costs[i] is not None and k in table]
        hits = (np.array([i for i, _ in found], dtype=np.int64), np.array([t for _, t in found], dtype=np.float64))
        self._hits = (table, *hits)
        return hits


def arrays_of(items_or_costs: Sequence[Item | Cost | None],
              key_nodes: Sequence[OpNode | None] | None = None) -> PricedArrays:
    """Arrays of a plan's items (their costs) or of plain Costs; see PricedArrays for key_nodes."""
    costs = [x.cost if isinstance(x, Item) else x for x in items_or_costs]
    return PricedArrays(costs, key_nodes)


def _interp(curve: Sequence[tuple[float, float]], log_size: np.ndarray) -> np.ndarray:
    xs = [math.log10(s) for s, _ in curve]
    ys = [e for _, e in curve]
    return np.interp(log_size, xs, ys)


def device_times(arrays: PricedArrays, spec: DeviceSpec, profile: Profile) -> np.ndarray:
    """Per entry, `kernel_time(cost, spec, profile, key).device_s` (0 for None), vectorized.

    Measured GEMM tables are looked up once per distinct GEMM shape; operator-benchmark hits (profile.op_table)
    take the measured time, moved across devices by the modelled-time ratio as predict._measured_op does."""
    out = _modelled_times(arrays, spec, profile)
    if profile.op_table:
        idx, secs = arrays.op_hits(profile.op_table)
        if idx.size:
            secs = secs.copy()
            if profile.transfer_scale is not None:
                tc, cc, bw = profile.transfer_scale
                source = evolve(profile, tc_flops=profile.tc_flops / tc, cc_flops=profile.cc_flops / cc,
                                mem_bw=profile.mem_bw / bw)
                there = _modelled_times(arrays, spec, source)[idx]
                here = out[idx]
                pos = there > 0
                secs[pos] = secs[pos] * (here[pos] / there[pos])
            out[idx] = secs
    return out


def _modelled_times(arrays: PricedArrays, spec: DeviceSpec, profile: Profile) -> np.ndarray:
    """predict._modelled(...).device_s per entry (roofline, launch floors, measured GEMMs; no op table)."""
    a = arrays
    n = a.n
    eff_c = np.ones(n)
    eff_cc = np.ones(n)
    eff_m = np.ones(n)
    ew = profile.curves.get("elementwise")
    for name, idx in a.by_kind:
        curves = profile.curves.get(name)
        if curves is None:
            raise ValueError(f"cost kind {name!r} has no efficiency curve in the profile")
        eff_c[idx] = _interp(curves.compute.points, a.log_tc[idx])
        cc_curves = ew if name in TENSOR_CORE_KINDS else curves
        if cc_curves is None:
            raise ValueError("cost kind 'elementwise' has no efficiency curve in the profile")
        eff_cc[idx] = _interp(cc_curves.compute.points, a.log_cc[idx])
        eff_m[idx] = _interp(curves.memory.points, a.log_bytes[idx])
    # sizes of 0 use efficiency 1 (their term is 0 anyway), as the scalar path does
    eff_c[a.tc <= 0] = 1.0
    eff_cc[a.cc <= 0] = 1.0
    eff_m[a.nbytes <= 0] = 1.0
    eff_m[a.strided] *= profile.strided_penalty

    peaks = np.array([profile.tc_flops * (spec.peaks_by_dtype.get(k, spec.tc_flops) / spec.tc_flops)
                      for k in a.dtype_keys] or [profile.tc_flops])
    tc_peak = peaks[a.dtype]
    with np.errstate(divide="ignore", invalid="ignore"):
        tc_s = np.where(a.tc > 0, a.tc / (tc_peak * eff_c), 0.0)
        cc_s = np.where(a.cc > 0, a.cc / (profile.cc_flops * eff_cc), 0.0)
        memory_s = np.where(a.nbytes > 0, a.nbytes / (profile.mem_bw * eff_m), 0.0)
    compute_s = tc_s + cc_s
    launch = profile.launch_s
    body = np.maximum(np.maximum(compute_s, memory_s), launch)

    if profile.gemm_table and a.gemm_idx.size:
        sec, flops = a.gemm_lookup(profile.gemm_table)
        gi = a.gemm_idx
        measured = sec[a.gemm_inverse] * a.tc[gi] / flops[a.gemm_inverse]
        body[gi] = np.maximum(measured, launch)

    out = body + (a.kernels - 1) * launch
    out[a.free] = 0.0
    return out


# -- replay ------------------------------------------------------------------------------------------------
def _segments(sync: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the sync-delimited segments: each ends at a sync item or at the last item."""
    n = sync.shape[-1]
    ends = np.flatnonzero(sync)
    if not ends.size or ends[-1] != n - 1:
        ends = np.append(ends, n - 1)
    starts = np.concatenate(([0], ends[:-1] + 1))
    return starts, ends


def replay_walls(host: np.ndarray, device: np.ndarray, sync: np.ndarray, graph: bool = False,
                 graph_launch_s: float = DEFAULT_GRAPH_LAUNCH_S,
                 graph_kernel_s: float = DEFAULT_GRAPH_KERNEL_S) -> np.ndarray:
    """`replay(...).wall_s` of each row of `device` (shape (rows, n) or (n,)), sharing `host` and `sync`.

    Requires host >= 0 and device >= 0 (what plans produce)."""
    dev = np.atleast_2d(np.asarray(device, dtype=float))
    rows, n = dev.shape
    if n == 0:
        return np.full(rows, graph_launch_s if graph else 0.0)
    if graph:
        # kernels back to back from the launch, graph_kernel_s apart; the host's wait ends with the device
        positive = (dev > 0).sum(axis=1)
        return graph_launch_s + dev.sum(axis=1) + graph_kernel_s * np.maximum(positive - 1, 0)
    h = np.asarray(host, dtype=float)
    s = np.asarray(sync, dtype=bool)
    big_h = np.cumsum(h)
    big_c = np.cumsum(dev, axis=1)
    g = big_h - big_c
    g += dev  # H_j - C_{j-1}
    starts, ends = _segments(s)
    gmax = np.maximum.reduceat(g, starts, axis=1)
    h_before = np.concatenate(([0.0], big_h))[starts]
    inc = np.maximum(big_h[ends], big_c[:, ends] + gmax) - h_before
    return inc.sum(axis=1)  # type: ignore[no-any-return]


def replay_wall(host: np.ndarray, device: np.ndarray, sync: np.ndarray, graph: bool = False,
                graph_launch_s: float = DEFAULT_GRAPH_LAUNCH_S, graph_kernel_s: float = DEFAULT_GRAPH_KERNEL_S
                ) -> float:
    """`replay(list(zip(host, device, sync)), graph=..., ...).wall_s` for one sequence."""
    h = np.asarray(host, dtype=float)
    if h.size and h.min() < 0:  # the closed form assumes a host that never runs backwards
        seq = [(float(x), float(d), bool(y)) for x, d, y in zip(h, device, sync, strict=True)]
        return replay(seq, graph=graph, graph_launch_s=graph_launch_s, graph_kernel_s=graph_kernel_s).wall_s
    return float(replay_walls(h, np.asarray(device, dtype=float), sync, graph, graph_launch_s, graph_kernel_s)[0])


def replay_ends(host: np.ndarray, device: np.ndarray, sync: np.ndarray, graph: bool = False,
                graph_launch_s: float = DEFAULT_GRAPH_LAUNCH_S, graph_kernel_s: float = DEFAULT_GRAPH_KERNEL_S
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(issue, start, end) per item, as `replay` reports them; host >= 0 and device >= 0."""
    d = np.asarray(device, dtype=float)
    n = d.size
    if graph:
        # kernel n ends after every earlier kernel and one graph_kernel_s gap per earlier positive kernel;
        # a zero-time item sits at the current device time (start = end)
        end = graph_launch_s + np.cumsum(d) + graph_kernel_s * np.maximum(np.cumsum(d > 0) - 1, 0)
        return np.full(n, graph_launch_s), end - d, end
    h = np.asarray(host, dtype=float)
    s = np.asarray(sync, dtype=bool)
    if n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    big_h = np.cumsum(h)
    big_c = np.cumsum(d)
    g = big_h - big_c + d
    issue = np.empty(n)
    end = np.empty(n)
    host0 = 0.0
    for a, b in zip(*_segments(s), strict=True):
        hb = big_h[a - 1] if a else 0.0
        seg = slice(a, b + 1)
        issue[seg] = host0 + (big_h[seg] - hb)
        end[seg] = host0 + big_c[seg] + (np.maximum.accumulate(g[seg]) - hb)
        host0 = max(issue[b], end[b]) if s[b] else issue[b]
    return issue, end - d, end


# -- plans -------------------------------------------------------------------------------------------------
@frozen
class HostModel:
    """A plan's host time per item as a function of the profile (see plan.plan_eager / plan_fused)."""

    op: np.ndarray  # bool: the item pays host_op_s (an eager Python call that launches kernels)
    view: np.ndarray  # bool: the item pays the no-kernel call's host time (host_view_s, else host_op_s)
    launch: np.ndarray  # bool: the item pays launch_host_s (one kernel launched by a compiled engine)
    charged: np.ndarray  # bool: the item carries its share of the nn.Module call overhead
    module_calls: int
    calls: int

    def host(self, profile: Profile) -> np.ndarray:
        view_host = profile.host_op_s if profile.host_view_s is None else profile.host_view_s
        spread = profile.host_module_s * self.module_calls / max(1, self.calls)
        out = np.where(self.op, profile.host_op_s, 0.0) + np.where(self.view, view_host, 0.0)
        out += np.where(self.launch, profile.launch_host_s, 0.0)
        return out + np.where(self.charged, spread, 0.0)  # type: ignore[no-any-return]


@frozen
class PlanArrays:
    """One (trace, execution) plan, device-independent: its costs as arrays, host model and syncs."""

    arrays: PricedArrays
    hosts: HostModel
    sync: np.ndarray
    ops: tuple[str, ...]


def plan_arrays(items: Sequence[Item], trace: Trace, costs: NodeCosts, execution: str) -> PlanArrays:
    """Arrays of a plan built by `plan.plan` (with any device: its items do not depend on it).

    The op_table key is the node's whenever the item's Cost is the node's own eager Cost (what plan.py passes
    to kernel_time then); fused chains and fused groups are looked up by no key."""
    nodes = trace.nodes
    key_nodes = [nodes[it.node] if it.cost is not None and it.cost is costs.eager[it.node] else None
                 for it in items]
    n = len(items)
    if execution in ("eager", "graph"):
        first = host_calls(trace, costs)
        charged = np.array([it.node in first for it in items], dtype=bool)
        launches = np.array([first.get(it.node, False) for it in items], dtype=bool)
        hosts = HostModel(op=charged & launches, view=charged & ~launches, launch=np.zeros(n, dtype=bool),
                          charged=charged, module_calls=sum(trace.module_calls.values()), calls=len(first))
    else:  # fused: every item is one kernel launched from the engine
        none = np.zeros(n, dtype=bool)
        hosts = HostModel(op=none, view=none, launch=np.ones(n, dtype=bool), charged=none, module_calls=0, calls=0)
    return PlanArrays(arrays=arrays_of(items, key_nodes), hosts=hosts,
                      sync=np.array([it.sync for it in items], dtype=bool), ops=tuple(it.op for it in items))
