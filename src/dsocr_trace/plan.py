"""Execution plans: which kernels a phase launches, in what order, under `eager`, `fused` or `compiled` execution
(`graph` is eager's kernels with the decode step replayed as a CUDA graph).

All plans read the same trace; the rules differ, not the graph.
* eager (HF transformers out of the box): every traced aten op is dispatched from Python (host cost per op,
  views included), every non-view op launches its kernel(s); RMSNorm, RoPE and activations run unfused;
  the MoE runs transformers' grouped_mm path exactly as traced (sort, gather, histc, two grouped GEMMs,
  scatter); attention is the SDPA kernel the trace names. `.item()` checks block the host.
* fused (an optimized engine): semantic groups run as one kernel each (fused RMSNorm, grouped-GEMM MoE),
  chains of pointwise ops inside one module fuse into one kernel (RoPE, SiLU*up, residual adds, casts),
  views cost nothing, decode replays a CUDA graph (no launch gaps, one launch per step).
* compiled (torch.compile per stage module, as inductor lowers it): library kernels stay ATen's (the MoE keeps
  its sort, top-k, histogram and grouped GEMMs), element-wise, index and scan runs fuse across one stage's
  modules, short sorts become Triton, the glue between stages runs eager, decode appends into a StaticCache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import evolve, frozen

from dsocr_trace.costs import Cost, NodeCosts
from dsocr_trace.costs.base import call_arg
from dsocr_trace.hardware.profile import Profile
from dsocr_trace.hardware.spec import DeviceSpec
from dsocr_trace.predict import KernelTime, kernel_time, replay
from dsocr_trace.trace.ir import ATTENTION, MOE_EXPERTS, OpNode, Trace, in_stage_module, op_base, phase_stage

# graph: eager's kernels, decode replayed as one CUDA graph; compiled: torch.compile as measured (inductor fuses
# each stage module's kernels; decode under mode="reduce-overhead" replays CUDA graphs, with the per-step host
# cost of Dynamo's guards, the graph launches and the eager glue around them)
EXECUTIONS = ("eager", "fused", "graph", "compiled")
GRAPH_DECODE = ("fused", "graph", "compiled")  # executions whose decode steps replay as CUDA graphs
_FUSIBLE = ("elementwise", "copy")
# inductor lowers a sort along a dim of at most 512 elements to a persistent Triton kernel (larger ones fall back to
# ATen's radix sort), scans (cumsum) and indexing to Triton too: under torch.compile these fuse like pointwise ops
INDUCTOR_SORT_MAX = 512


def is_kv_append(n: OpNode, phase: str) -> bool:
    """A decode step's KV-cache append as a DynamicCache traces it: cat(past cache, the new positions), the
    past cache an input of the step."""
    return (phase == "decode" and n.op.startswith("aten.cat") and len(n.inputs) == 2
            and n.inputs[0].producer is None and n.inputs[1].producer is not None)


def static_cache_write(n: OpNode) -> Cost:
    """The same append into a preallocated StaticCache (what a compiled decode uses): only the new positions are
    written (an index_copy), the cache is not copied."""
    new = n.inputs[1]
    return Cost(bytes_read=float(new.nbytes), bytes_written=float(new.nbytes), kind="gather",
                shape={"numel": new.numel, "contiguous": False})


def _inductor_fusible(n: OpNode, c: Cost) -> bool:
    base = op_base(n.op)
    if c.kind == "gather" or base == "aten.cumsum":
        return True
    if base in ("aten.sort", "aten.argsort") and n.inputs:
        shape = n.inputs[0].shape
        dim = call_arg(n, 1, "dim", -1)
        dim = dim if isinstance(dim, int) else -1
        return bool(shape) and shape[dim] <= INDUCTOR_SORT_MAX
    return False


@frozen
class Item:
    """One issued unit: a kernel (or fused kernel), or host-only work (views) with device_s 0."""

    node: int
    op: str
    module_path: str
    module_type: str
    stage: str  # report stage (decoder.prefill, decode.step, ...)
    cost: Cost | None
    time: KernelTime | None
    host_s: float
    sync: bool
    fused_from: int = 1  # aten ops merged into this item

    @property
    def device_s(self) -> float:
        return self.time.device_s if self.time else 0.0


def _merge(costs: Sequence[Cost], external_read: float, final_write: float) -> Cost:
    return Cost(tc_flops=sum(c.tc_flops for c in costs), cc_flops=sum(c.cc_flops for c in costs),
                bytes_read=external_read, bytes_written=final_write, kind="elementwise", kernels=1,
                shape={"numel": max((c.shape.get("numel", 0) for c in costs), default=0), "contiguous": True,
                       "fused_ops": len(costs)})


def host_calls(trace: Trace, costs: NodeCosts) -> dict[int, bool]:
    """First node of each Python-level torch call -> whether that call launches a kernel.

    Eager host time is paid per Python call (argument parsing, dispatch, the model's own Python around it),
    so it is charged once per call, on the call's first aten op."""
    first: dict[int, int] = {}
    launches: dict[int, bool] = {}
    for n, c in zip(trace.nodes, costs.eager, strict=True):
        if n.members:
            continue
        key = n.pycall if n.pycall >= 0 else -1 - n.id  # ops outside any traced call stand alone
        first.setdefault(key, n.id)
        launches[key] = launches.get(key, False) or (c is not None and c.kernels > 0)
    return {first[k]: launches[k] for k in first}


def host_counts(trace: Trace, costs: NodeCosts) -> tuple[int, int, int]:
    """(Python calls that launch kernels, calls that launch none, module calls): what eager host time is made of."""
    calls = host_calls(trace, costs)
    kernel_calls = sum(1 for v in calls.values() if v)
    return kernel_calls, len(calls) - kernel_calls, sum(trace.module_calls.values())


def plan_eager(trace: Trace, costs: NodeCosts, spec: DeviceSpec, profile: Profile) -> list[Item]:
    """Host time per Python-level call: host_op_s for a call that launches kernels, host_view_s for one that
    launches none, plus the nn.Module call overhead spread evenly over the calls."""
    first = host_calls(trace, costs)
    spread = profile.host_module_s * sum(trace.module_calls.values()) / max(1, len(first))
    view_host = profile.host_op_s if profile.host_view_s is None else profile.host_view_s
    items: list[Item] = []
    for n, c in zip(trace.nodes, costs.eager, strict=True):
        if n.members:
            continue
        t = kernel_time(c, spec, profile, n) if c is not None else None
        host = 0.0
        if n.id in first:
            # host-only Python work (the remote code's n-gram processor) says how many calls' worth it is
            host = (profile.host_op_s if first[n.id] else view_host) * n.attrs.get("host_calls", 1) + spread
        items.append(Item(n.id, n.op, n.module_path, n.module_type, phase_stage(n.stage, trace.phase), c, t,
                          host, n.sync))
    return items


def plan_fused(trace: Trace, costs: NodeCosts, spec: DeviceSpec, profile: Profile,
               compiled: bool = False) -> list[Item]:
    """compiled: torch.compile per stage module as inductor lowers it (kernel names of the compiled runs):
    library kernels (GEMMs, grouped GEMMs, sorts, top-k, histograms, attention) stay the ATen kernels, so an MoE
    layer is its member ops with their element-wise runs fused, not one fused-MoE kernel; the glue outside the
    stage modules runs eager, op by op."""
    nodes = trace.nodes
    items: list[Item] = []
    chain: list[tuple[OpNode, Cost]] = []  # the pending fusible run, each op with the cost it runs at
    # which non-view ops read each op's results (a view's readers count as its base's): a fused kernel still
    # writes an intermediate that something outside it reads (a residual sum feeding a norm and the next residual)
    base_of: dict[int, int] = {}
    readers: dict[int, set[int]] = {}
    for n in nodes:
        for t in n.inputs:
            if t.producer is not None:
                src = base_of.get(t.producer[0], t.producer[0])
                if n.is_view:
                    base_of[n.id] = src
                else:
                    readers.setdefault(src, set()).add(n.id)
    # eager fusion stays inside one module; inductor fuses across the modules of one compiled stage
    fusion_scope = (lambda m: m.stage) if compiled else (lambda m: m.module_path)

    def flush() -> None:
        if not chain:
            return
        ids = {n.id for n, _ in chain}
        ext = 0.0
        for n, c in chain:
            outside = sum(t.distinct_numel * t.itemsize for t in n.inputs
                          if t.producer is None or t.producer[0] not in ids)
            # a gather or scatter touches only the rows it picks or writes, not the whole table or cache
            ext += min(outside, c.bytes_read) if c.kind == "gather" else outside
        last, last_cost = chain[-1]
        kept = sum(c.bytes_written for n, c in chain[:-1] if readers.get(n.id, set()) - ids)
        merged = _merge([c for _, c in chain], ext, last_cost.bytes_written + kept)
        items.append(Item(last.id, "fused.pointwise" if len(chain) > 1 else last.op, last.module_path,
                          last.module_type, phase_stage(last.stage, trace.phase), merged,
                          kernel_time(merged, spec, profile), profile.launch_host_s, False, len(chain)))
        chain.clear()

    def single(n: OpNode, c: Cost) -> None:
        items.append(Item(n.id, n.op, n.module_path, n.module_type, phase_stage(n.stage, trace.phase), c,
                          kernel_time(c, spec, profile, n), profile.launch_host_s, n.sync))

    def visit(n: OpNode) -> None:
        c = costs.eager[n.id]
        if compiled and c is not None and is_kv_append(n, trace.phase):
            c = static_cache_write(n)
        if c is None or c.kernels == 0 or (c.kind in ("view", "alloc") and not c.bytes):
            return  # views and allocations: no kernel, no host work in a compiled engine
        if compiled and not in_stage_module(n.module_path):
            flush()
            single(n, c)  # eager glue between the compiled stage modules
        elif (c.kind in _FUSIBLE or (compiled and _inductor_fusible(n, c))) and n.op != ATTENTION:
            if chain and fusion_scope(chain[-1][0]) != fusion_scope(n):
                flush()
            chain.append((n, c))
        else:
            flush()
            single(n, c)

    def expanded(group: int) -> bool:
        return compiled and nodes[group].op == MOE_EXPERTS

    for n in nodes:
        if n.group is not None and n.group in costs.fused and not expanded(n.group):
            continue  # inside a fused semantic group: the group's kernel stands for it
        if n.members:
            if expanded(n.id):
                continue  # its members come in node order, each through visit
            flush()
            fc = costs.fused.get(n.id)
            if fc is None:
                continue  # no fused rule (patch embedding): its members come in node order, each through visit
            items.append(Item(n.id, n.op, n.module_path, n.module_type, phase_stage(n.stage, trace.phase), fc,
                              kernel_time(fc, spec, profile, n), profile.launch_host_s, False, len(n.members)))
            continue
        visit(n)
    flush()
    return items


def plan(trace: Trace, costs: NodeCosts, spec: DeviceSpec, profile: Profile, execution: str) -> list[Item]:
    if execution in ("eager", "graph"):
        return plan_eager(trace, costs, spec, profile)
    items = plan_fused(trace, costs, spec, profile, compiled=execution == "compiled")
    if execution == "compiled" and trace.phase != "decode":
        # inductor's generated wrapper launches each fused kernel from Python
        items = [evolve(it, host_s=profile.compiled_launch_s) for it in items]
    return items


def uses_graph(trace: Trace, execution: str) -> bool:
    """The fused engine and torch.compile's reduce-overhead mode replay decode steps as CUDA graphs."""
    return execution in GRAPH_DECODE and trace.phase == "decode"


def graph_launch_s(profile: Profile, execution: str) -> float:
    """Host cost of one decode step's graph launch(es): a compiled model's step also pays Dynamo's guards and
    the eager glue around its graphs."""
    return profile.compiled_step_s if execution == "compiled" else profile.graph_launch_s


def replay_steps(seq: list[tuple[float, float, bool]], phase: str, execution: str, profile: Profile) -> Any:
    """Two-lane replay of (host_s, device_s, sync) items of one phase. A decode step ends with the generation
    loop's stop check (a host sync), and replays as a CUDA graph under the executions that capture one."""
    if phase == "decode" and seq:
        h, d, _ = seq[-1]
        seq = [*seq[:-1], (h, d, True)]
    if phase == "decode" and execution in GRAPH_DECODE:
        return replay(seq, graph=True, graph_launch_s=graph_launch_s(profile, execution),
                      graph_kernel_s=profile.graph_kernel_s)
    return replay(seq)


def run_plan(items: list[Item], trace: Trace, execution: str, profile: Profile) -> tuple[Any, list[Item]]:
    """Two-lane replay of the plan (replay_steps)."""
    return replay_steps([(it.host_s, it.device_s, it.sync) for it in items], trace.phase, execution, profile), items


def new_totals() -> dict[str, Any]:
    return {"device_s": 0.0, "host_s": 0.0, "kernels": 0, "bound_s": {"compute": 0.0, "memory": 0.0, "launch": 0.0}}


def add_item(acc: dict[str, Any], it: Item) -> None:
    """Add one plan item's device and host time, kernels and bound to a running total."""
    acc["device_s"] += it.device_s
    acc["host_s"] += it.host_s
    if it.time is not None and it.device_s > 0:
        acc["kernels"] += it.cost.kernels if it.cost else 1
        b = it.time.bound if it.time.bound in acc["bound_s"] else "launch"
        acc["bound_s"][b] += it.device_s


def stage_predictions(items: list[Item], result: Any) -> dict[str, dict[str, Any]]:
    """Device, host and wall time per stage.

    Stages interleave in issue order (the text embedding runs before the vision tower), so wall time is
    split by increments: each item is charged the time by which it pushes the phase's finish line
    (max of its host issue and kernel end) past everything before it. Stage walls sum to the phase wall.
    """
    out: dict[str, dict[str, Any]] = {}
    frontier = 0.0
    for i, it in enumerate(items):
        s = out.setdefault(it.stage, new_totals() | {"wall_s": 0.0})
        add_item(s, it)
        reach = max(result.end[i], result.issue[i])
        if reach > frontier:
            s["wall_s"] += reach - frontier
            frontier = reach
    if items and result.wall_s > frontier:
        out[items[-1].stage]["wall_s"] += result.wall_s - frontier
    for s in out.values():
        s["bound"] = bound_of(s)
    return out


# A stage is host-bound when the device sits idle, waiting for the host, for more than this share of its wall.
HOST_IDLE_SHARE = 0.10


def bound_of(totals: dict[str, Any]) -> str:
    """What limits a stage, the one rule every output shows: `host` when the device idles more than
    HOST_IDLE_SHARE of the stage's wall, else the limiter (compute, memory, launch) with the most device time."""
    wall, dev = totals["wall_s"], totals["device_s"]
    if wall - dev > HOST_IDLE_SHARE * wall:
        return "host"
    bounds = totals.get("bound_s") or {}
    return max(bounds, key=lambda k: bounds[k]) if any(bounds.values()) else "launch"
