"""Per-node rows of a run: the trace's nodes (shapes, module, stage) joined with the report's predicted times,
and the columns nodes.csv and nodes.parquet write from them."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsocr_trace.report.markdown import predictions_of, shape_text
from dsocr_trace.report.units import intensity, ms_value, num
from dsocr_trace.trace.ir import PHASES

if TYPE_CHECKING:
    from dsocr_trace.analyze import Analysis


# -- node rows -------------------------------------------------------------------------------------------------


def trace_nodes(a: Analysis) -> list[dict[str, Any]]:
    """Per-node analytic data of an Analysis, one dict per costed aten op (semantic group nodes skipped: their
    members carry the counts, as in the report's totals). Keys: id, phase, op, module_path, module_type, stage
    (report stage), kind, tc_flops, cc_flops, bytes_read, bytes_written, kernels, input_shapes, output_shapes."""
    from dsocr_trace.trace.ir import phase_stage

    rows: list[dict[str, Any]] = []
    for phase, tr in a.traces.items():
        for n, c in zip(tr.nodes, a.costs[phase].eager, strict=True):
            if n.members:
                continue
            rows.append({
                "id": n.id, "phase": phase, "op": n.op, "module_path": n.module_path, "module_type": n.module_type,
                "stage": phase_stage(n.stage, phase), "kind": c.kind if c is not None else "uncosted",
                "tc_flops": c.tc_flops if c is not None else 0.0, "cc_flops": c.cc_flops if c is not None else 0.0,
                "bytes_read": c.bytes_read if c is not None else 0.0,
                "bytes_written": c.bytes_written if c is not None else 0.0,
                "kernels": c.kernels if c is not None else 0,
                "input_shapes": [list(t.shape) for t in n.inputs], "output_shapes": [list(t.shape) for t in n.outputs],
            })
    return rows


def prediction_nodes(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    pn = predictions_of(report).get("nodes")
    out: list[dict[str, Any]] = []
    if isinstance(pn, dict):
        for phase in list(PHASES) + [k for k in pn if k not in PHASES]:
            for n in pn.get(phase) or []:
                if isinstance(n, dict):
                    out.append({"phase": phase} | n if "phase" not in n else dict(n))
    elif isinstance(pn, list):
        out = [dict(n) for n in pn if isinstance(n, dict)]
    return out


def merged_nodes(report: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Node rows: predictions.nodes when present (enriched from `nodes` where phase, id and op agree), else
    `nodes`. Each row is a dict with the analytic keys and, where predicted, device_s/host_s/start_s/end_s."""
    pred = prediction_nodes(report)
    if not pred:
        return [dict(n) for n in nodes or []]
    by_key = {(n.get("phase"), n.get("id")): n for n in nodes or []}
    out = []
    for p in pred:
        row = dict(p)
        t = by_key.get((p.get("phase"), p.get("id")))
        if t is not None and t.get("op") == p.get("op"):
            for k, v in t.items():
                row.setdefault(k, v)
        out.append(row)
    return out


NODE_COLUMNS: list[tuple[str, str, Callable[[Mapping[str, Any]], Any]]] = [
    # (header, source key for presence checks, value)
    ("phase", "phase", lambda n: n.get("phase", "")),
    ("id", "id", lambda n: n.get("id", "")),
    ("op", "op", lambda n: n.get("op", "")),
    ("module_path", "module_path", lambda n: n.get("module_path", "")),
    ("module_type", "module_type", lambda n: n.get("module_type", "")),
    ("stage", "stage", lambda n: n.get("stage", "")),
    ("kind", "kind", lambda n: n.get("kind", "")),
    ("tc_flops [FLOP]", "tc_flops", lambda n: num(n.get("tc_flops"))),
    ("cc_flops [FLOP]", "cc_flops", lambda n: num(n.get("cc_flops"))),
    ("flops [FLOP]", "tc_flops", lambda n: num(n.get("tc_flops")) + num(n.get("cc_flops"))),
    ("bytes_read [B]", "bytes_read", lambda n: num(n.get("bytes_read")) if "bytes_read" in n else ""),
    ("bytes_written [B]", "bytes_written", lambda n: num(n.get("bytes_written")) if "bytes_written" in n else ""),
    ("bytes [B]", "bytes", lambda n: node_bytes(n)),
    ("intensity [FLOP/B]", "tc_flops",
     lambda n: intensity(num(n.get("tc_flops")) + num(n.get("cc_flops")), node_bytes(n))),
    ("kernels", "kernels", lambda n: n.get("kernels", "")),
    ("input_shapes", "input_shapes", lambda n: shape_text(n.get("input_shapes"))),
    ("output_shapes", "output_shapes", lambda n: shape_text(n.get("output_shapes"))),
]
NODE_PRED_COLUMNS: list[tuple[str, str, Callable[[Mapping[str, Any]], Any]]] = [
    ("device_time [ms]", "device_s", lambda n: ms_value(n.get("device_s"))),
    ("host_time [ms]", "host_s", lambda n: ms_value(n.get("host_s"))),
    ("start [ms]", "start_s", lambda n: ms_value(n.get("start_s"))),
    ("end [ms]", "end_s", lambda n: ms_value(n.get("end_s"))),
    ("bound", "bound", lambda n: n.get("bound", "")),
    ("efficiency", "efficiency", lambda n: n.get("efficiency", "")),
    ("source", "source", lambda n: n.get("source", "")),
]


def node_bytes(n: Mapping[str, Any]) -> float:
    if "bytes" in n:
        return num(n.get("bytes"))
    return num(n.get("bytes_read")) + num(n.get("bytes_written"))


def node_columns(report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols = [h for h, _, _ in NODE_COLUMNS]
    if prediction_nodes(report):
        cols += [h for h, _, _ in NODE_PRED_COLUMNS]
    return cols


def write_nodes_csv(report: Mapping[str, Any], path: str | Path,
                    nodes: Sequence[Mapping[str, Any]] | None = None) -> int:
    """One row per node (predictions.nodes when present, else `nodes`); returns the row count. With neither,
    the file holds the header only."""
    rows = merged_nodes(report, nodes)
    columns = NODE_COLUMNS + (NODE_PRED_COLUMNS if prediction_nodes(report) else [])
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([h for h, _, _ in columns])
        for n in rows:
            w.writerow([fn(n) for _, _, fn in columns])
    return len(rows)


