"""IR -> networkx.DiGraph: op nodes with dataflow edges, module nodes with containment edges.

Plain data: every attribute is a str, int, float or bool, so `nx.write_graphml` writes it and any tool
(networkx, Gephi, yEd, pandas) reads it back. Node ids: "op:<id>" for ops, "mod:<path>" for modules
("mod:" is the root). Edge attribute `type`: "dataflow" (producer -> consumer, with the tensor's shape and
dtype) or "contains" (module -> child module, module -> op). Every node has a human-readable `label` (op
and where it runs, or module name and class). Given a report's predictions, op nodes carry
`predicted_device_s`/`predicted_host_s` (the plan item issued at that node: under fused execution a fused
chain's time sits on its last op and a semantic group's on the group node, `plan_item` says which nodes are
items) and module nodes the inclusive sums.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import orjson

from dsocr_trace.costs import Cost, rule_name
from dsocr_trace.trace.ir import OpNode, TensorRef, Trace, parent_path, self_and_ancestors


def _shape(t: TensorRef) -> str:
    return "x".join(str(s) for s in t.shape) or "scalar"


def op_label(op: str, module_path: str) -> str:
    """'aten.mm.default' in 'model.language_model.layers.3.mlp.down_proj' -> 'mm @ layers.3.mlp.down_proj'."""
    short = op.removeprefix("aten.").removesuffix(".default")
    where = ".".join(module_path.split(".")[-4:]) if module_path else "(top level)"
    return f"{short} @ {where}"


def module_label(path: str, module_type: str) -> str:
    """'model.language_model.layers.3.mlp' of class DeepseekV2MLP -> 'layers.3.mlp (DeepseekV2MLP)'."""
    if path == "":
        return "(root)"
    return f"{'.'.join(path.split('.')[-3:])} ({module_type})" if module_type else ".".join(path.split(".")[-3:])


def node_predictions(predictions: Mapping[str, Any], phase: str) -> dict[str, Any]:
    """What build_graph needs from a report's `predictions` for one phase: plan items by node id (device and
    host time summed, should a node issue more than one) and inclusive module times by path."""
    ops: dict[int, dict[str, Any]] = {}
    for r in (predictions.get("nodes") or {}).get(phase) or []:
        o = ops.setdefault(int(r["id"]), {"device_s": 0.0, "host_s": 0.0, "start_s": r.get("start_s", 0.0),
                                          "bound": r.get("bound", ""), "fused_ops": 0})
        o["device_s"] += float(r.get("device_s", 0.0))
        o["host_s"] += float(r.get("host_s", 0.0))
        o["fused_ops"] += int(r.get("fused_ops", 1))
    return {"ops": ops, "modules": (predictions.get("modules") or {}).get(phase) or {},
            "device": (predictions.get("device") or {}).get("key", ""), "execution": predictions.get("execution", ""),
            "profile": (predictions.get("profile") or {}).get("source", "")}


def _op_attrs(n: OpNode, cost: Cost | None, fused: Cost | None) -> dict[str, Any]:
    c = cost or fused
    return {
        "kind_of_node": "op",
        "label": op_label(n.op, n.module_path),
        "op": n.op,
        "index": n.id,
        "module_path": n.module_path,
        "module_type": n.module_type,
        "stage": n.stage,
        "is_view": n.is_view,
        "sync": n.sync,
        "pass_kind": n.pass_kind,
        "group": -1 if n.group is None else n.group,
        "members": len(n.members),
        "input_shapes": ";".join(_shape(t) for t in n.inputs),
        "input_dtypes": ";".join(t.dtype for t in n.inputs),
        "output_shapes": ";".join(_shape(t) for t in n.outputs),
        "output_dtypes": ";".join(t.dtype for t in n.outputs),
        "params": ";".join(t.param for t in n.inputs if t.param),
        "attrs_json": orjson.dumps(n.attrs, option=orjson.OPT_SORT_KEYS).decode(),
        "costed": c is not None,
        "cost_kind": c.kind if c else "",
        "rule": (rule_name(n.op) or "") if c else "",
        "tc_flops": c.tc_flops if c else 0.0,
        "cc_flops": c.cc_flops if c else 0.0,
        "bytes_read": c.bytes_read if c else 0.0,
        "bytes_written": c.bytes_written if c else 0.0,
        "kernels": c.kernels if c else 0,
        "aggregate": cost is None and fused is not None,  # a group node: its members carry the eager cost
    }


def _predicted_op(p: Mapping[str, Any] | None) -> dict[str, Any]:
    if p is None:  # not issued on its own: a view under fused execution, a member of a fused kernel
        return {"plan_item": False, "predicted_device_s": 0.0, "predicted_host_s": 0.0, "predicted_start_s": 0.0,
                "bound": "", "plan_fused_ops": 0}
    return {"plan_item": True, "predicted_device_s": p["device_s"], "predicted_host_s": p["host_s"],
            "predicted_start_s": float(p["start_s"]), "bound": str(p["bound"]), "plan_fused_ops": p["fused_ops"]}


def build_graph(trace: Trace, eager: list[Cost | None], fused: dict[int, Cost],
                predictions: Mapping[str, Any] | None = None) -> nx.DiGraph:
    """The phase's op graph; `predictions` (from `node_predictions`) adds predicted times to every node."""
    g = nx.DiGraph(phase=trace.phase, tracer=trace.tracer, nodes_traced=len(trace.nodes))
    if predictions is not None:
        g.graph.update(device=predictions["device"], execution=predictions["execution"],
                       profile=predictions["profile"])
    ops = predictions["ops"] if predictions is not None else None
    for n in trace.nodes:
        attrs = _op_attrs(n, eager[n.id], fused.get(n.id))
        if ops is not None:
            attrs.update(_predicted_op(ops.get(n.id)))
        g.add_node(f"op:{n.id}", **attrs)
    for n in trace.nodes:
        for t in n.inputs:
            if t.producer is not None:
                src = f"op:{t.producer[0]}"
                if src != f"op:{n.id}" and not g.has_edge(src, f"op:{n.id}"):
                    g.add_edge(src, f"op:{n.id}", type="dataflow", shape=_shape(t), dtype=t.dtype,
                               bytes=t.distinct_numel * t.itemsize)
    _add_modules(g, trace, eager, predictions["modules"] if predictions is not None else None)
    return g


def _add_modules(g: nx.DiGraph, trace: Trace, eager: list[Cost | None],
                 predicted: Mapping[str, Any] | None = None) -> None:
    """Module nodes with inclusive aggregates over every op inside them (aten kernels, not group nodes)."""
    agg: dict[str, dict[str, float]] = {}
    zero = {"ops": 0, "kernels": 0, "tc_flops": 0.0, "cc_flops": 0.0, "bytes": 0.0}
    for path in [*trace.module_types, *(n.module_path for n in trace.nodes)]:
        for p in self_and_ancestors(path):
            agg.setdefault(p, dict(zero))
    for n in trace.nodes:
        if n.members:
            continue  # a semantic group: its member ops are counted
        c = eager[n.id]
        for p in self_and_ancestors(n.module_path):
            a = agg[p]
            a["ops"] += 1
            if c is not None:
                a["kernels"] += c.kernels
                a["tc_flops"] += c.tc_flops
                a["cc_flops"] += c.cc_flops
                a["bytes"] += c.bytes
    for path, a in agg.items():
        mtype = trace.module_types.get(path, "Root" if path == "" else "")
        extra: dict[str, Any] = {}
        if predicted is not None:
            mp = predicted.get(path) or {}
            extra = {"predicted_device_s": float(mp.get("device_s", 0.0)),
                     "predicted_host_s": float(mp.get("host_s", 0.0))}
        g.add_node(f"mod:{path}", kind_of_node="module", label=module_label(path, mtype), module_path=path,
                   module_type=mtype, calls=trace.module_calls.get(path, 0), **a, **extra)
        if path != "":
            g.add_edge(f"mod:{parent_path(path)}", f"mod:{path}", type="contains")
    for n in trace.nodes:
        g.add_edge(f"mod:{n.module_path}", f"op:{n.id}", type="contains")


def write_graphml(g: nx.DiGraph, path: Path) -> None:
    nx.write_graphml(g, str(path), infer_numeric_types=True)


def merge_phases(graphs: dict[str, nx.DiGraph]) -> nx.DiGraph:
    """One graph holding each phase under a prefix ("prefill/op:12"), for a single GraphML file."""
    out = nx.DiGraph()
    for phase, g in graphs.items():
        mapping = {n: f"{phase}/{n}" for n in g.nodes}
        h = nx.relabel_nodes(g, mapping)
        for n in h.nodes:
            h.nodes[n]["phase"] = phase
        out.update(h)
        out.graph[f"{phase}_nodes_traced"] = g.graph.get("nodes_traced", 0)
        for k in ("device", "execution", "profile"):
            if k in g.graph:
                out.graph[k] = g.graph[k]
    return out
