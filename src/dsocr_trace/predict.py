"""Latency primitives: one op's device time, host time, and a two-lane host/device replay of an op sequence.

`kernel_time` is the one latency model every command uses (analyze, sweep, validate, plan):
* with a calibrated profile, the op's kernel family (dsocr_trace.kernels: GEMM/GEMV, grouped GEMM, attention,
  convolution, memory-bound) answers from curves fitted on the calibration sweep, scaled by the in-model
  factor; a transferred profile scales the memory side by the bandwidth ratio;
* otherwise (datasheet only, or a kind no family covers) a roofline over efficiency curves:
  compute_s = tc_flops / (tc_peak * eff_c) + cc_flops / (cc_peak * eff_cc),
  memory_s = bytes / (mem_bw * eff_m [* strided penalty]), device_s = max(compute_s, memory_s, launch_s).
  Curves take the op's own size (FLOPs or bytes), so small kernels get low efficiency.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from attrs import field, frozen

from dsocr_trace.cache import IdentityMemo
from dsocr_trace.costs.base import Cost
from dsocr_trace.hardware.profile import (
    DEFAULT_GRAPH_KERNEL_S,
    DEFAULT_GRAPH_LAUNCH_S,
    TENSOR_CORE_KINDS,
    Curve,
    Profile,
)
from dsocr_trace.hardware.spec import DeviceSpec
from dsocr_trace.kernels.model import perf_model
from dsocr_trace.kernels.query import query_of
from dsocr_trace.kernels.transfer import carry
from dsocr_trace.trace.ir import OpNode

# Cost.shape["dtype"] spellings -> DeviceSpec.peaks_by_dtype keys
_DTYPE_PEAK = {
    "bfloat16": "bf16", "bf16": "bf16",
    "float16": "fp16", "fp16": "fp16", "half": "fp16",
    "float8_e4m3fn": "fp8", "float8_e5m2": "fp8", "fp8": "fp8",
    "tf32": "tf32",
    "float32": "fp32", "fp32": "fp32",
}
# kinds whose kernels slow down when an operand is strided or broadcast (see Profile.strided_penalty)
_STRIDE_SENSITIVE = ("copy", "elementwise")


@frozen
class KernelTime:
    device_s: float
    compute_s: float
    memory_s: float
    launch_s: float  # the floor applied: launch_s x kernels (0 for free ops)
    bound: str  # "compute" | "memory" | "launch" | "none"
    efficiency: float  # on the binding side: the curve value used, or the achieved fraction
    source: str  # "spec-default" | "calibrated:<how the family answered>" | "transferred:<how>"


@frozen
class ReplayResult:
    wall_s: float  # max(host end, device end)
    device_busy_s: float  # sum of kernel times
    host_s: float  # host time spent issuing (excludes waiting on syncs)
    host_wait_s: float  # host time blocked on syncs
    device_idle_s: float  # wall_s - device_busy_s: the sum of `gaps`
    gaps: list[tuple[float, float]] = field(factory=list)  # device idle intervals (start, end), trailing included
    issue: list[float] = field(factory=list)  # per item: host time its launch completes
    start: list[float] = field(factory=list)  # per item: kernel start on the device
    end: list[float] = field(factory=list)  # per item: kernel end


def efficiency(curve: Curve | Sequence[tuple[float, float]], size: float) -> float:
    """Interpolate efficiency linearly in log10(size) between the curve's points; clamp outside them."""
    pts = curve.points if isinstance(curve, Curve) else tuple(curve)
    if not pts:
        raise ValueError("efficiency curve has no points")
    if size <= pts[0][0]:
        return pts[0][1]
    if size >= pts[-1][0]:
        return pts[-1][1]
    x = math.log10(size)
    for (s0, e0), (s1, e1) in itertools.pairwise(pts):
        if size <= s1:
            x0, x1 = math.log10(s0), math.log10(s1)
            return e0 + (e1 - e0) * (x - x0) / (x1 - x0)
    return pts[-1][1]  # unreachable: size < last point was checked above


def _tc_peak(cost: Cost, spec: DeviceSpec, profile: Profile) -> float:
    # the profile's peak is for BF16; another dtype scales it by the datasheet ratio (fp8 2x on Hopper, ...)
    key = _DTYPE_PEAK.get(str(cost.shape.get("dtype", "bf16")), "bf16")
    ratio = spec.peaks_by_dtype.get(key, spec.tc_flops) / spec.tc_flops
    return profile.tc_flops * ratio


def _is_strided(cost: Cost) -> bool:
    return cost.kind in _STRIDE_SENSITIVE and (cost.shape.get("contiguous") is False
                                                or cost.shape.get("broadcast") is True)


def kernel_time(cost: Cost, spec: DeviceSpec, profile: Profile, node: OpNode | None = None) -> KernelTime:
    """Device time of one op (or one fused kernel when node is None): the profile's kernel-family model when it
    has one that covers the op, else the datasheet roofline."""
    if cost.kind in ("view", "sync") or cost.kernels <= 0:
        return _modelled(cost, spec, profile)
    model = perf_model(profile)
    if model is not None:
        q = _query(node, cost)
        memo = _memo_of(profile)
        key = (q, cost.kernels)
        hit = memo.get(key)
        if hit is not None:
            return hit
        e = model.estimate(q)
        if e is not None:
            sec, comp, mem = e.seconds, e.compute_s, e.memory_s
            tag = "calibrated"
            if profile.transfer is not None:
                # a GPU nobody calibrated: the source's estimate carried by the cross-GPU model
                e = carry(e, q, profile.transfer.src, profile.transfer.dst, e.tile)
                sec, comp, mem = e.seconds, e.compute_s, e.memory_s
                tag = "transferred"
            launch = profile.launch_s * cost.kernels
            bound = "launch" if sec <= 1.5 * launch else ("memory" if mem >= comp else "compute")
            kt = KernelTime(sec, comp, mem, launch, bound, min(1.5, max(comp, mem) / sec) if sec > 0 else 0.0,
                            f"{tag}:{e.how}")
            if len(memo) < 200_000:
                memo[key] = kt
            return kt
    return _modelled(cost, spec, profile)


_QUERIES = IdentityMemo(500_000)
_TIMES = IdentityMemo(64)


def _memo_of(profile: Profile) -> dict[Any, KernelTime]:
    """Kernel times a profile has answered, by (query, kernels): a query's time depends on nothing else."""
    return _TIMES.get(profile, dict)  # type: ignore[no-any-return]


def _query(node: OpNode | None, cost: Cost) -> Any:
    """query_of, remembered per cost object (each node has its own): the op priced on several GPUs is described
    once."""
    return _QUERIES.get(cost, lambda: query_of(node, cost))


def _modelled(cost: Cost, spec: DeviceSpec, profile: Profile) -> KernelTime:
    source = "spec-default" if not profile.calibrated else f"{profile.source}:roofline"
    if cost.kind == "sync" and cost.kernels > 0:
        # the scalar's device-to-host copy; the host's stall is the replay's job
        return KernelTime(profile.sync_copy_s, 0.0, 0.0, profile.sync_copy_s, "launch", 0.0, "measured:sync-copy")
    if cost.kind in ("view", "sync") or cost.kernels <= 0:
        return KernelTime(0.0, 0.0, 0.0, 0.0, "none", 0.0, source)  # views alias
    if cost.kind not in profile.curves:
        raise ValueError(f"cost kind {cost.kind!r} has no efficiency curve in the profile")
    curves = profile.curves[cost.kind]

    eff_c = efficiency(curves.compute, cost.tc_flops) if cost.tc_flops > 0 else 1.0
    tc_s = cost.tc_flops / (_tc_peak(cost, spec, profile) * eff_c) if cost.tc_flops > 0 else 0.0
    # CUDA-core math inside a tensor-core kernel (softmax exp, bias) runs like elementwise work
    cc_curves = profile.curves["elementwise"] if cost.kind in TENSOR_CORE_KINDS else curves
    eff_cc = efficiency(cc_curves.compute, cost.cc_flops) if cost.cc_flops > 0 else 1.0
    cc_s = cost.cc_flops / (profile.cc_flops * eff_cc) if cost.cc_flops > 0 else 0.0
    compute_s = tc_s + cc_s
    # the side that dominates compute time names the compute efficiency reported
    eff_compute = eff_c if tc_s >= cc_s else eff_cc

    nbytes = cost.bytes
    eff_m = efficiency(curves.memory, nbytes) if nbytes > 0 else 1.0
    if _is_strided(cost):
        eff_m *= profile.strided_penalty
    memory_s = nbytes / (profile.mem_bw * eff_m) if nbytes > 0 else 0.0

    launch = profile.launch_s
    extra = (cost.kernels - 1) * launch  # further kernels of a multi-kernel op each cost at least a launch
    body = max(compute_s, memory_s, launch)
    if launch >= compute_s and launch >= memory_s:
        bound, eff = "launch", (eff_compute if compute_s >= memory_s else eff_m)
    elif compute_s >= memory_s:
        bound, eff = "compute", eff_compute
    else:
        bound, eff = "memory", eff_m
    return KernelTime(body + extra, compute_s, memory_s, launch * cost.kernels, bound, eff, source)


def host_time(n_aten_ops: int, n_module_calls: int, profile: Profile) -> float:
    """Eager host time: Python + dispatch + launch per aten op, plus nn.Module.__call__ per module call."""
    return n_aten_ops * profile.host_op_s + n_module_calls * profile.host_module_s


def _gaps(starts: Sequence[float], ends: Sequence[float], wall: float) -> list[tuple[float, float]]:
    """Device idle intervals between 0 and wall (zero-length items are no kernels and are skipped)."""
    out: list[tuple[float, float]] = []
    t = 0.0
    for s, e in zip(starts, ends, strict=True):
        if e <= s:
            continue
        if s > t:
            out.append((t, s))
        t = max(t, e)
    if wall > t:
        out.append((t, wall))
    return out


def replay(items: Sequence[tuple[float, float, bool]], *, graph: bool = False,
           graph_launch_s: float = DEFAULT_GRAPH_LAUNCH_S, graph_kernel_s: float = DEFAULT_GRAPH_KERNEL_S
           ) -> ReplayResult:
    """Replay (host_s, device_s, sync) items in issue order on a host lane and an in-order device stream.

    Eager: the host spends host_s on item i, then its kernel is queued; the kernel starts at
    max(queued time, end of the previous kernel). A sync item blocks the host until that kernel (and so every
    earlier one) has finished.
    Graph (graph=True): one CUDA-graph launch costs the host graph_launch_s and replaces every item's host
    time; kernels then run back to back, graph_kernel_s apart. A sync item makes the host wait for it after
    the launch (a graph itself cannot sync, so syncs only matter at its end). Pass the profile's
    graph_launch_s / graph_kernel_s.
    """
    issue: list[float] = []
    start: list[float] = []
    end: list[float] = []
    host = 0.0
    busy = 0.0
    wait = 0.0
    if graph:
        host = graph_launch_s
        dev = host
        first = True
        last_sync = 0.0
        for _host_s, dev_s, sync in items:
            if dev_s > 0:
                s = dev if first else dev + graph_kernel_s
                first = False
                dev = s + dev_s
            else:
                s = dev  # not a graph node: no gap
            issue.append(graph_launch_s)
            start.append(s)
            end.append(dev)
            busy += dev_s
            if sync:
                last_sync = dev
        host_issue = graph_launch_s
        if last_sync > host:
            wait = last_sync - host
            host = last_sync
        device_end = dev if items else 0.0
    else:
        dev = 0.0
        host_issue = 0.0
        for host_s, dev_s, sync in items:
            host += host_s
            host_issue += host_s
            s = max(host, dev)
            dev = s + dev_s
            issue.append(host)
            start.append(s)
            end.append(dev)
            busy += dev_s
            if sync and dev > host:
                wait += dev - host
                host = dev
        device_end = dev
    wall = max(host, device_end)
    gaps = _gaps(start, end, wall)
    return ReplayResult(wall_s=wall, device_busy_s=busy, host_s=host_issue, host_wait_s=wait,
                        device_idle_s=wall - busy, gaps=gaps, issue=issue, start=start, end=end)
