"""IR -> networkx.DiGraph: op nodes with dataflow edges, module nodes with containment edges.

Plain data: every attribute is a str, int, float or bool, so `nx.write_graphml` writes it and any tool
(networkx, Gephi, yEd, pandas) reads it back. Node ids: "op:<id>" for ops, "mod:<path>" for modules
("mod:" is the root). Edge attribute `type`: "dataflow" (producer -> consumer, with the tensor's shape and
dtype) or "contains" (module -> child module, module -> op).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import orjson

from dsocr_trace.costs import Cost, rule_name
from dsocr_trace.trace.ir import OpNode, TensorRef, Trace, parent_path, self_and_ancestors


def _shape(t: TensorRef) -> str:
    return "x".join(str(s) for s in t.shape) or "scalar"


def _op_attrs(n: OpNode, cost: Cost | None, fused: Cost | None) -> dict[str, Any]:
    c = cost or fused
    return {
        "kind_of_node": "op",
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


def build_graph(trace: Trace, eager: list[Cost | None], fused: dict[int, Cost]) -> nx.DiGraph:
    g = nx.DiGraph(phase=trace.phase, tracer=trace.tracer, nodes_traced=len(trace.nodes))
    for n in trace.nodes:
        g.add_node(f"op:{n.id}", **_op_attrs(n, eager[n.id], fused.get(n.id)))
    for n in trace.nodes:
        for t in n.inputs:
            if t.producer is not None:
                src = f"op:{t.producer[0]}"
                if src != f"op:{n.id}" and not g.has_edge(src, f"op:{n.id}"):
                    g.add_edge(src, f"op:{n.id}", type="dataflow", shape=_shape(t), dtype=t.dtype,
                               bytes=t.distinct_numel * t.itemsize)
    _add_modules(g, trace, eager)
    return g


def _add_modules(g: nx.DiGraph, trace: Trace, eager: list[Cost | None]) -> None:
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
        g.add_node(f"mod:{path}", kind_of_node="module", module_path=path,
                   module_type=trace.module_types.get(path, "Root" if path == "" else ""),
                   calls=trace.module_calls.get(path, 0), **a)
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
    return out
