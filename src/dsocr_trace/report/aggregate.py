"""Totals of the analytic counts per stage, module, module type; coverage of the cost rules."""

from __future__ import annotations

from collections import Counter
from typing import Any

from dsocr_trace.costs import NodeCosts, rule_name
from dsocr_trace.trace.ir import STAGES, Trace, phase_stage, self_and_ancestors

# Report stage names: the prefill stages plus the whole decode step.
REPORT_STAGES = ("vision.sam", "vision.clip", "projector", "decoder.prefill", "lm_head.prefill", "decode.step")


def _zero() -> dict[str, float]:
    return {"tc_flops": 0.0, "cc_flops": 0.0, "flops": 0.0, "bytes_read": 0.0, "bytes_written": 0.0, "bytes": 0.0,
            "ops": 0, "kernels": 0}


def _add(acc: dict[str, float], c: Any) -> None:
    acc["ops"] += 1
    if c is None:
        return
    acc["tc_flops"] += c.tc_flops
    acc["cc_flops"] += c.cc_flops
    acc["flops"] += c.tc_flops + c.cc_flops
    acc["bytes_read"] += c.bytes_read
    acc["bytes_written"] += c.bytes_written
    acc["bytes"] += c.bytes_read + c.bytes_written
    acc["kernels"] += c.kernels


def stage_totals(traces: dict[str, Trace], costs: dict[str, NodeCosts]) -> dict[str, dict[str, float]]:
    out = {s: _zero() for s in REPORT_STAGES}
    for phase, tr in traces.items():
        for n, c in zip(tr.nodes, costs[phase].eager, strict=True):
            if n.members:
                continue  # group nodes: their members carry the counts
            _add(out[phase_stage(n.stage, phase)], c)
    for v in out.values():
        v["intensity_flop_per_byte"] = v["flops"] / v["bytes"] if v["bytes"] else 0.0
    return out


def decode_breakdown(tr: Trace, nc: NodeCosts) -> dict[str, dict[str, float]]:
    out = {s: _zero() for s in STAGES if s in ("decoder", "lm_head")}
    for n, c in zip(tr.nodes, nc.eager, strict=True):
        if not n.members:
            _add(out.setdefault(n.stage, _zero()), c)
    return out


def module_totals(tr: Trace, nc: NodeCosts) -> dict[str, dict[str, Any]]:
    """Inclusive counts per module path (each op adds to its module and every ancestor)."""
    out: dict[str, dict[str, Any]] = {}
    for n, c in zip(tr.nodes, nc.eager, strict=True):
        if n.members:
            continue
        for path in self_and_ancestors(n.module_path):
            acc = out.get(path)
            if acc is None:
                acc = out[path] = _zero() | {"module_type": tr.module_types.get(path, "Root" if path == "" else "")}
            _add(acc, c)
    for path, acc in out.items():
        acc["calls"] = tr.module_calls.get(path, 0)
    return dict(sorted(out.items()))


def module_type_totals(tr: Trace, nc: NodeCosts) -> dict[str, dict[str, Any]]:
    """Exclusive counts per module class (each op counted once, under its innermost module's class)."""
    out: dict[str, dict[str, Any]] = {}
    for n, c in zip(tr.nodes, nc.eager, strict=True):
        if n.members:
            continue
        key = n.module_type or "Root"
        _add(out.setdefault(key, _zero()), c)
    return dict(sorted(out.items()))


def coverage(traces: dict[str, Trace], costs: dict[str, NodeCosts]) -> dict[str, Any]:
    ops: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    uncosted: Counter[str] = Counter()
    views = 0
    semantic: Counter[str] = Counter()
    for phase, tr in traces.items():
        for n, c in zip(tr.nodes, costs[phase].eager, strict=True):
            if n.members:
                semantic[n.op] += 1
                continue
            ops[n.op] += 1
            if c is None:
                uncosted[n.op] += 1
            else:
                rules[rule_name(n.op) or "?"] += 1
                views += c.kind == "view"
    total = sum(ops.values())
    return {
        "ops_total": total,
        "ops_costed": total - sum(uncosted.values()),
        "views": views,
        "uncosted": dict(sorted(uncosted.items())),
        "semantic_groups": dict(sorted(semantic.items())),
        "rules_used": dict(sorted(rules.items())),
        "op_counts": dict(sorted(ops.items())),
    }
