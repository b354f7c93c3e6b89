"""Cost rules: every traced op maps to a Cost (FLOPs split tensor-core / CUDA-core, bytes, kernels)."""

from __future__ import annotations

from attrs import frozen

from dsocr_trace.cache import IdentityMemo
from dsocr_trace.costs import (  # noqa: F401
    attention,
    gemm,
    misc,
    movement,
    optimizer,
    pointwise,
    reduction,
    semantic,
)
from dsocr_trace.costs.base import (
    DEFAULT_OPTIONS,
    RULES,
    Cost,
    CostOptions,
    cost_of,
    find_rule,
    rule_name,
)
from dsocr_trace.trace.ir import SEMANTIC_OPS, Trace

__all__ = [
    "DEFAULT_OPTIONS",
    "RULES",
    "Cost",
    "CostOptions",
    "NodeCosts",
    "cost_of",
    "cost_trace",
    "find_rule",
    "rule_name",
]


@frozen
class NodeCosts:
    """Costs of one trace. `eager[i]` is node i as an aten kernel (None: no rule, or a group node whose members
    carry the cost); `fused[i]` is a semantic group's one-kernel cost."""

    eager: list[Cost | None]
    fused: dict[int, Cost]
    uncosted: dict[str, int]  # op -> count of nodes with no rule


_COSTED = IdentityMemo(512)  # traces whose costs are remembered (a sweep's fit points, a service's requests)


def cost_trace(trace: Trace, opts: CostOptions = DEFAULT_OPTIONS) -> NodeCosts:
    """Every node of the trace through the rule registry; remembered per (trace, options) in this process."""
    per_trace: dict[CostOptions, NodeCosts] = _COSTED.get(trace, dict)
    hit = per_trace.get(opts)
    if hit is None:
        hit = per_trace[opts] = _cost_trace(trace, opts)
    return hit


def _cost_trace(trace: Trace, opts: CostOptions) -> NodeCosts:
    eager: list[Cost | None] = []
    fused: dict[int, Cost] = {}
    uncosted: dict[str, int] = {}
    nodes = trace.nodes
    # members of a MoE group learn the group's top-k (the grouped GEMM rows are token-expert pairs)
    for n in nodes:
        if n.op == semantic.MOE_EXPERTS:
            for m in n.members:
                nodes[m].attrs.setdefault("moe_top_k", n.attrs["top_k"])
    for n in nodes:
        if n.op in SEMANTIC_OPS and n.members:
            eager.append(None)
            c = cost_of(n, opts)
            if c is not None:
                fused[n.id] = c
            continue
        if n.attrs.get("on_cpu"):
            eager.append(Cost(kind="view", kernels=0, shape={"on_cpu": True}))  # host work, no GPU kernel
            continue
        c = cost_of(n, opts)
        if c is None:
            uncosted[n.op] = uncosted.get(n.op, 0) + 1
        elif n.attrs.get("h2d_bytes"):
            # a pageable host-to-device copy of the CPU operand precedes the kernel
            c = Cost(tc_flops=c.tc_flops, cc_flops=c.cc_flops, bytes_read=c.bytes_read, bytes_written=c.bytes_written,
                     kind=c.kind, kernels=c.kernels + 1, shape=c.shape | {"h2d_bytes": n.attrs["h2d_bytes"]})
        eager.append(c)
    return NodeCosts(eager=eager, fused=fused, uncosted=dict(sorted(uncosted.items())))
