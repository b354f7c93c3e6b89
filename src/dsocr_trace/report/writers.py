"""Run-folder writers beside report.json: report.yaml, nodes.csv, modules.csv, summary.md and docs/*.md.

Everything here reads the plain report dict (as `build_report` returns it, or as loaded back from report.json)
and, optionally, a list of per-node dicts from the trace (`trace_nodes`). `report["predictions"]` is optional:
prediction columns and sections appear only when it is present, and every prediction field is read with
`.get` so a missing field leaves a blank cell rather than an error.

Conventions: CSV cells hold plain numbers (FLOPs, bytes, milliseconds) with the unit in the column header;
Markdown shows human-readable SI numbers. report.yaml carries the whole report except the per-node list of
the predictions (`predictions.nodes`), which is replaced by `predictions.nodes_omitted` (row counts, see
nodes.csv): those lists run to thousands of rows and belong in a spreadsheet.
"""

from __future__ import annotations

import csv
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dsocr_trace.report.units import gib
from dsocr_trace.trace.ir import parent_path, self_and_ancestors

if TYPE_CHECKING:
    from dsocr_trace.analyze import Analysis

PHASES = ("prefill", "decode")
YAML_NODES_NOTE = "predictions.nodes is omitted from report.yaml: one row per node is in nodes.csv"

# -- small helpers ---------------------------------------------------------------------------------------------


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def si(x: Any, unit: str, digits: int = 2) -> str:
    """1.23e9, 'FLOP' -> '1.23 GFLOP'."""
    v = _num(x)
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:,.{digits}f} {prefix}{unit}"
    return f"{v:,.0f} {unit}" if v == int(v) else f"{v:,.{digits}f} {unit}"


def ms(seconds: Any, digits: int = 3) -> str:
    return f"{_num(seconds) * 1e3:,.{digits}f}"


def _ms_value(seconds: Any) -> float | str:
    return "" if seconds is None else _num(seconds) * 1e3


def _intensity(flops: float, nbytes: float) -> float:
    return flops / nbytes if nbytes else 0.0


def _md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> list[str]:
    """A GitHub Markdown table; `align` is one 'l'/'r' per column (default: first left, rest right)."""
    al = align or "l" + "r" * (len(headers) - 1)
    sep = ["---" if a == "l" else "---:" for a in al]
    out = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    for r in rows:
        out.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
    return out


def _plain(obj: Any) -> Any:
    """JSON-like plain data: tuples -> lists, numpy scalars -> Python numbers, keys -> str."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, bool | int | float | str) or obj is None:
        return obj
    item = getattr(obj, "item", None)  # numpy / torch scalars
    if callable(item):
        return item()
    return str(obj)


def _preds(report: Mapping[str, Any]) -> dict[str, Any]:
    p = report.get("predictions")
    return p if isinstance(p, dict) else {}


def _shape_str(shapes: Any) -> str:
    """[[1, 10, 286, 128], [128]] -> '1x10x286x128; 128' (scalars and empty shapes as '()')."""
    if shapes is None:
        return ""
    if isinstance(shapes, str):
        return shapes
    parts = []
    for s in shapes:
        if isinstance(s, list | tuple):
            parts.append("x".join(str(d) for d in s) if s else "()")
        else:
            parts.append(str(s))
    return "; ".join(parts)


# -- YAML ------------------------------------------------------------------------------------------------------


def yaml_view(report: Mapping[str, Any]) -> dict[str, Any]:
    """The structure report.yaml holds: the report as plain data, predictions.nodes replaced by a count."""
    data: dict[str, Any] = _plain(report)
    p = data.get("predictions")
    if isinstance(p, dict) and "nodes" in p:
        nodes = p.pop("nodes")
        counts = {ph: len(v) for ph, v in nodes.items()} if isinstance(nodes, dict) else {"all": len(nodes or [])}
        p["nodes_omitted"] = {"rows": counts, "see": "nodes.csv", "note": YAML_NODES_NOTE}
    return data


def write_yaml(report: Mapping[str, Any], path: str | Path) -> None:
    """The whole report as YAML (keys sorted, block style); predictions.nodes omitted (see yaml_view)."""
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: ~10x faster
    text = yaml.dump(yaml_view(report), Dumper=dumper, sort_keys=True, default_flow_style=False, allow_unicode=True,
                     width=120)
    Path(path).write_text(text, encoding="utf-8")


# -- node rows -------------------------------------------------------------------------------------------------


def trace_nodes(a: Analysis) -> list[dict[str, Any]]:
    """Per-node analytic data of an Analysis, one dict per costed aten op (semantic group nodes skipped: their
    members carry the counts, as in the report's totals). Keys: id, phase, op, module_path, module_type, stage
    (report stage), kind, tc_flops, cc_flops, bytes_read, bytes_written, kernels, input_shapes, output_shapes."""
    from dsocr_trace.report.aggregate import phase_stage

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


def _prediction_nodes(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    pn = _preds(report).get("nodes")
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
    pred = _prediction_nodes(report)
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
    ("tc_flops [FLOP]", "tc_flops", lambda n: _num(n.get("tc_flops"))),
    ("cc_flops [FLOP]", "cc_flops", lambda n: _num(n.get("cc_flops"))),
    ("flops [FLOP]", "tc_flops", lambda n: _num(n.get("tc_flops")) + _num(n.get("cc_flops"))),
    ("bytes_read [B]", "bytes_read", lambda n: _num(n.get("bytes_read")) if "bytes_read" in n else ""),
    ("bytes_written [B]", "bytes_written", lambda n: _num(n.get("bytes_written")) if "bytes_written" in n else ""),
    ("bytes [B]", "bytes", lambda n: _node_bytes(n)),
    ("intensity [FLOP/B]", "tc_flops",
     lambda n: _intensity(_num(n.get("tc_flops")) + _num(n.get("cc_flops")), _node_bytes(n))),
    ("kernels", "kernels", lambda n: n.get("kernels", "")),
    ("input_shapes", "input_shapes", lambda n: _shape_str(n.get("input_shapes"))),
    ("output_shapes", "output_shapes", lambda n: _shape_str(n.get("output_shapes"))),
]
NODE_PRED_COLUMNS: list[tuple[str, str, Callable[[Mapping[str, Any]], Any]]] = [
    ("device_time [ms]", "device_s", lambda n: _ms_value(n.get("device_s"))),
    ("host_time [ms]", "host_s", lambda n: _ms_value(n.get("host_s"))),
    ("start [ms]", "start_s", lambda n: _ms_value(n.get("start_s"))),
    ("end [ms]", "end_s", lambda n: _ms_value(n.get("end_s"))),
    ("bound", "bound", lambda n: n.get("bound", "")),
    ("efficiency", "efficiency", lambda n: n.get("efficiency", "")),
    ("source", "source", lambda n: n.get("source", "")),
]


def _node_bytes(n: Mapping[str, Any]) -> float:
    if "bytes" in n:
        return _num(n.get("bytes"))
    return _num(n.get("bytes_read")) + _num(n.get("bytes_written"))


def node_columns(report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols = [h for h, _, _ in NODE_COLUMNS]
    if _prediction_nodes(report):
        cols += [h for h, _, _ in NODE_PRED_COLUMNS]
    return cols


def write_nodes_csv(report: Mapping[str, Any], path: str | Path,
                    nodes: Sequence[Mapping[str, Any]] | None = None) -> int:
    """One row per node (predictions.nodes when present, else `nodes`); returns the row count. With neither,
    the file holds the header only."""
    rows = merged_nodes(report, nodes)
    columns = NODE_COLUMNS + (NODE_PRED_COLUMNS if _prediction_nodes(report) else [])
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([h for h, _, _ in columns])
        for n in rows:
            w.writerow([fn(n) for _, _, fn in columns])
    return len(rows)


# -- module rows -----------------------------------------------------------------------------------------------

MODULE_COLUMNS = ["phase", "module_path", "module_type", "depth", "calls", "ops", "kernels", "tc_flops [FLOP]",
                  "cc_flops [FLOP]", "flops [FLOP]", "bytes_read [B]", "bytes_written [B]", "bytes [B]",
                  "intensity [FLOP/B]"]
MODULE_PRED_COLUMNS = ["device_time [ms]", "host_time [ms]", "predicted_kernels"]


def module_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (phase, module path): report["modules"] (inclusive totals) joined with predictions.modules."""
    pm = _preds(report).get("modules") or {}
    has_pred = bool(pm)
    out: list[dict[str, Any]] = []
    mods = report.get("modules") or {}
    for phase in list(PHASES) + [k for k in mods if k not in PHASES]:
        analytic = mods.get(phase) or {}
        predicted = pm.get(phase) or {} if isinstance(pm, dict) else {}
        paths = list(analytic) + [p for p in predicted if p not in analytic]
        for path in paths:
            m = analytic.get(path) or {}
            flops = _num(m.get("tc_flops")) + _num(m.get("cc_flops"))
            nbytes = _num(m.get("bytes_read")) + _num(m.get("bytes_written"))
            row: dict[str, Any] = {
                "phase": phase, "module_path": path, "module_type": m.get("module_type", ""),
                "depth": 0 if path == "" else path.count(".") + 1, "calls": m.get("calls", ""),
                "ops": m.get("ops", ""), "kernels": m.get("kernels", ""),
                "tc_flops [FLOP]": _num(m.get("tc_flops")), "cc_flops [FLOP]": _num(m.get("cc_flops")),
                "flops [FLOP]": flops, "bytes_read [B]": _num(m.get("bytes_read")),
                "bytes_written [B]": _num(m.get("bytes_written")), "bytes [B]": nbytes,
                "intensity [FLOP/B]": _intensity(flops, nbytes),
            }
            if has_pred:
                p = predicted.get(path) or {}
                row["device_time [ms]"] = _ms_value(p.get("device_s"))
                row["host_time [ms]"] = _ms_value(p.get("host_s"))
                row["predicted_kernels"] = p.get("kernels", "")
            out.append(row)
    return out


def write_modules_csv(report: Mapping[str, Any], path: str | Path) -> int:
    """One row per module and phase (inclusive totals; prediction columns when present); returns the row count."""
    rows = module_rows(report)
    cols = MODULE_COLUMNS + (MODULE_PRED_COLUMNS if _preds(report).get("modules") else [])
    with Path(path).open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return len(rows)


# -- summary.md ------------------------------------------------------------------------------------------------


def _kv_table(d: Mapping[str, Any], fmt: Callable[[str, Any], str] | None = None) -> list[str]:
    rows = [(k, fmt(k, v) if fmt else ("" if v is None else v)) for k, v in d.items() if not isinstance(v, dict)]
    return _md_table(["field", "value"], rows, "ll")


def _params_fmt(k: str, v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else str(v)


def _stage_table(report: Mapping[str, Any]) -> list[str]:
    ps = _preds(report).get("stages") or {}
    headers = ["stage", "tensor-core FLOP", "CUDA-core FLOP", "bytes", "FLOP/B", "kernels", "ops"]
    if ps:
        headers += ["device ms", "host ms", "wall ms", "bound"]
    rows = []
    for name, s in (report.get("stages") or {}).items():
        r = [name, si(s.get("tc_flops"), "FLOP"), si(s.get("cc_flops"), "FLOP"), si(s.get("bytes"), "B"),
             f"{_num(s.get('intensity_flop_per_byte')):.1f}", int(_num(s.get("kernels"))), int(_num(s.get("ops")))]
        if ps:
            p = ps.get(name) or {}
            r += [ms(p.get("device_s")), ms(p.get("host_s")), ms(p.get("wall_s")), p.get("bound", "")]
        rows.append(r)
    return _md_table(headers, rows)


def _bound_table(report: Mapping[str, Any]) -> list[str]:
    ps = _preds(report).get("stages") or {}
    rows = []
    for name, p in ps.items():
        b = p.get("bound_s") or {}
        dev = _num(p.get("device_s"))
        cells = [name]
        for k in ("compute", "memory", "launch"):
            v = _num(b.get(k))
            cells.append(f"{v * 1e3:,.3f} ({100 * v / dev:.0f}%)" if dev else f"{v * 1e3:,.3f}")
        cells += [ms(p.get("host_s")), p.get("bound", "")]
        rows.append(cells)
    return _md_table(["stage", "compute ms", "memory ms", "launch ms", "host ms", "bound"], rows)


def _gib(x: Any) -> str:
    return gib(_num(x))


def _memory_table(mem: Mapping[str, Any]) -> list[str]:
    """The request's memory as parts that add up to the total (GiB, as every output shows memory), then the
    device's usable memory and the fit."""
    rows: list[list[Any]] = []
    dtype = mem.get("weight_dtype", "?")
    for comp, b in (mem.get("weights_by_component") or {}).items():
        rows.append([f"weights: {comp}", _gib(b), f"{_num(b):,.0f}", f"{dtype} weights"])
    rows.append(["KV cache", _gib(mem.get("kv_cache_bytes")), f"{_num(mem.get('kv_cache_bytes')):,.0f}",
                 f"{_num(mem.get('kv_bytes_per_token')):,.0f} B per token x {mem.get('kv_context_tokens')} tokens "
                 "(prompt + output) x batch"])
    where = mem.get("activation_peak_op") or f"node {mem.get('activation_peak_at_node')}"
    module = mem.get("activation_peak_module")
    rows.append(["activation peak", _gib(mem.get("activation_peak_bytes")),
                 f"{_num(mem.get('activation_peak_bytes')):,.0f}",
                 f"live tensors at {where}" + (f" in {module}" if module else "")
                 + (f"; holds the fp32 logits ({_gib(mem.get('logits_bytes'))} GiB)"
                    if mem.get("activation_peak_holds_logits") else
                    f"; the fp32 logits ({_gib(mem.get('logits_bytes'))} GiB) come later, below this peak")])
    rows.append(["runtime reserve", _gib(mem.get("reserve_bytes")), f"{_num(mem.get('reserve_bytes')):,.0f}",
                 "CUDA context, library workspaces, allocator slack"])
    rows.append(["**total**", f"**{_gib(mem.get('total_bytes'))}**", f"{_num(mem.get('total_bytes')):,.0f}",
                 "the sum of the rows above"])
    if "device_bytes" in mem:
        fit = "fits" if mem.get("fits") else "DOES NOT FIT"
        rows.append(["device (usable)", _gib(mem.get("device_bytes")), f"{_num(mem.get('device_bytes')):,.0f}",
                     f"{fit}; headroom {_gib(mem.get('headroom_bytes'))} GiB"])
    return _md_table(["memory", "GiB", "bytes", "what"], rows, "lrrl")


def _request_table(req: Mapping[str, Any]) -> list[str]:
    rows: list[list[Any]] = []
    for k, v in req.items():
        if k.endswith("per_s") and isinstance(v, int | float):  # a rate: tokens_per_s, pages_per_s
            rows.append([k[:-6] + " [1/s]", f"{v:,.3f}"])
        elif k.endswith("_s") and isinstance(v, int | float):
            rows.append([k[:-2] + " [ms]", ms(v)])
        elif isinstance(v, float):
            rows.append([k, f"{v:,.3f}"])
        else:
            rows.append([k, f"{v:,}" if isinstance(v, int) else str(v)])
    return _md_table(["request", "value"], rows, "lr")


def _top_module_types(report: Mapping[str, Any], phase: str, n: int = 12) -> list[str]:
    mt = (report.get("module_types") or {}).get(phase) or {}
    pmt = (_preds(report).get("module_types") or {}).get(phase) or {}
    items = sorted(mt.items(), key=lambda kv: -_num(kv[1].get("flops")))[:n]
    headers = ["module class", "FLOP", "bytes", "FLOP/B", "kernels", "ops"] + (["device ms", "host ms"] if pmt else [])
    rows = []
    for cls, t in items:
        r = [cls, si(t.get("flops"), "FLOP"), si(t.get("bytes"), "B"),
             f"{_intensity(_num(t.get('flops')), _num(t.get('bytes'))):.1f}", t.get("kernels", ""), t.get("ops", "")]
        if pmt:
            p = pmt.get(cls) or {}
            r += [ms(p.get("device_s")), ms(p.get("host_s"))]
        rows.append(r)
    return _md_table(headers, rows)


def summary_markdown(report: Mapping[str, Any]) -> str:
    wl = report.get("workload") or {}
    model = report.get("model") or {}
    tool = report.get("tool") or {}
    preds = _preds(report)
    L: list[str] = [f"# dsocr-trace summary: {model.get('id', '?')}, mode {wl.get('label', wl.get('mode', '?'))}", ""]
    L += [f"{tool.get('name', 'dsocr-trace')} {tool.get('version', '')} (torch {tool.get('torch', '?')}, "
          f"transformers {tool.get('transformers', '?')}), report schema {report.get('schema_version', '?')}. "
          "FLOPs count 2 per multiply-add; bytes are the minimum each kernel must move; times in milliseconds.",
          "", "Layer-by-layer explanations: [docs/index.md](docs/index.md).", ""]
    if report.get("warnings"):
        L += ["## Warnings", "", *(f"- {w}" for w in report["warnings"]), ""]
    L += ["## Workload", ""]
    L += _kv_table(wl, lambda k, v: "" if v is None else (" x ".join(map(str, v)) if isinstance(v, list) else str(v)))
    L += ["", f"Vision tokens {wl.get('vision_tokens')}, prefill {wl.get('prefill_tokens')} tokens per sequence, "
          f"batch {wl.get('batch')}, decode step traced at KV length {wl.get('decode_kv_len')}, "
          f"{wl.get('output_tokens')} output tokens.", ""]
    params = report.get("params") or {}
    L += ["## Parameters", ""]
    L += _kv_table(params, _params_fmt)
    comps = params.get("components") or {}
    if comps:
        L += ["", *_md_table(["component", "params"], [(k, f"{v:,}") for k, v in comps.items()], "lr")]
    L += ["", "## Stages", ""]
    if preds:
        dev = preds.get("device") or {}
        prof = preds.get("profile") or {}
        L += [f"Predicted on **{dev.get('name', dev.get('key', '?'))}**, execution `{preds.get('execution', '?')}`, "
              f"weights {preds.get('weight_dtype', '?')}, profile `{prof.get('source', '?')}`.", ""]
    L += _stage_table(report)
    L += ["", "decode.step is one decode step (one new token per sequence); the other stages run once per prefill.",
          ""]
    db = report.get("decode_breakdown") or {}
    if db:
        L += ["### Decode step by stage", ""]
        L += _md_table(["stage", "tensor-core FLOP", "CUDA-core FLOP", "bytes", "kernels", "ops"],
                       [(k, si(v.get("tc_flops"), "FLOP"), si(v.get("cc_flops"), "FLOP"), si(v.get("bytes"), "B"),
                         v.get("kernels", ""), v.get("ops", "")) for k, v in db.items()])
        L += [""]
    if preds.get("stages"):
        L += ["## Bound breakdown (predicted device time by limiter)", ""]
        L += _bound_table(report)
        L += ["", "compute: the kernel's FLOPs at the achieved FLOP rate dominate; memory: its bytes at the "
              "achieved bandwidth; launch: the per-kernel floor. A stage is `host` bound when Python dispatch "
              "takes longer than its kernels.", ""]
    phases = preds.get("phases") or {}
    if phases:
        L += ["## Phases (predicted)", ""]
        keys = sorted({k for v in phases.values() if isinstance(v, dict) for k in v})
        L += _md_table(["phase", *(k[:-2] + " ms" if k.endswith("_s") else k for k in keys)],
                       [[ph, *(ms(v.get(k)) if k.endswith("_s") else v.get(k, "") for k in keys)]
                        for ph, v in phases.items() if isinstance(v, dict)])
        L += ["", "prefill is one forward over the page; decode is one step at the traced KV length.", ""]
    if preds.get("request"):
        L += ["## Request", ""]
        L += _request_table(preds["request"])
        L += [""]
    mem = preds.get("memory") or report.get("memory")
    if mem:  # the request's memory needs no device; with one, the fit check comes with it
        L += ["## Memory", ""]
        L += _memory_table(mem)
        L += [""]
    for phase in PHASES:
        if (report.get("module_types") or {}).get(phase):
            L += [f"## Top module classes, {phase} (exclusive counts)", ""]
            L += _top_module_types(report, phase)
            L += [""]
    cov = report.get("coverage") or {}
    L += ["## Coverage", ""]
    unc = cov.get("uncosted") or {}
    L += [f"{cov.get('ops_total', 0):,} ops traced, {cov.get('ops_costed', 0):,} costed by a rule "
          f"({cov.get('views', 0):,} of them views, free), {sum(unc.values()):,} uncosted.", ""]
    if unc:
        L += ["Uncosted ops (no cost rule; counted as zero FLOPs and bytes):", ""]
        L += _md_table(["op", "count"], sorted(unc.items()), "lr")
    else:
        L += ["Uncosted ops: none."]
    sg = cov.get("semantic_groups") or {}
    if sg:
        L += ["", "Semantic groups (recognised multi-op patterns): "
              + ", ".join(f"{k} x{v}" for k, v in sg.items()) + "."]
    rules = cov.get("rules_used") or {}
    if rules:
        L += ["", "Cost rules used: " + ", ".join(f"{k} ({v})" for k, v in rules.items()) + "."]
    notes = model.get("build_notes") or []
    if notes:
        L += ["", "## Build notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(L) + "\n"


def write_summary_md(report: Mapping[str, Any], path: str | Path) -> None:
    Path(path).write_text(summary_markdown(report), encoding="utf-8")


# -- layer docs ------------------------------------------------------------------------------------------------

_SAM_ATTN = re.compile(r"SamVision(Sdpa)?Attention")
_CLIP = re.compile(r"^UnlimitedOcr(Attention|MLP|EncoderLayer|Encoder|VisionEncoder)$")


def _family_of(path: str, chain: Sequence[str], op: str = "", io_last_dims: tuple[int, ...] = ()) -> str:
    """Family of an op given its innermost module path and the class names of that module and its ancestors."""
    kv_cat = op.startswith("aten.cat") and bool(io_last_dims) and len(set(io_last_dims)) == 1
    return _family_cached(path, tuple(chain), kv_cat)


@functools.lru_cache(maxsize=1 << 16)
def _family_cached(path: str, chain: tuple[str, ...], kv_cat: bool) -> str:
    # thousands of nodes share a few hundred (path, chain) pairs: classify each pair once
    has = lambda *names: any(n in t for t in chain for n in names)  # noqa: E731
    if has("TextMoe", "TextExperts", "TopkRouter"):
        return "moe"
    if any(_SAM_ATTN.search(t) for t in chain):
        return "sam_attention"
    if has("PatchEmbeddings", "VisionEmbeddings"):
        return "patch_embed"
    if has("SamVisionNeck", "SamVisionProj"):
        return "sam_neck"
    if has("SamMLPBlock", "SamVisionLayer", "SamVisionEncoder") or path.startswith("model.vision_tower.sam_encoder"):
        return "sam_block"
    if any(_CLIP.match(t) for t in chain) or path.startswith("model.vision_tower.vision_encoder"):
        return "clip_block"
    if has("RMSNorm"):
        return "rmsnorm"
    if has("TextAttention"):
        if kv_cat:
            return "kv_cache"  # concatenation along the sequence axis: the DynamicCache growing
        return "decoder_attention"
    if has("TextMLP"):
        return "dense_mlp"
    if path == "" or path == "lm_head" or path.startswith("lm_head."):
        return "lm_head"
    if path.startswith("model.multi_modal_projector") or path in ("model", "model.vision_tower"):
        return "projector"
    return "decoder_other"


def _chain(path: str, types: Mapping[str, str]) -> list[str]:
    return [t for p in self_and_ancestors(path) if (t := types.get(p, ""))]


_TOTAL_KEYS = ("tc_flops", "cc_flops", "bytes_read", "bytes_written", "ops", "kernels")


def _zero_totals() -> dict[str, float]:
    return dict.fromkeys(_TOTAL_KEYS, 0.0) | {"modules": 0.0, "device_s": 0.0, "host_s": 0.0, "timed": 0.0}


def _exclusive(mods: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Exclusive totals per module path from the report's inclusive ones (minus the direct children)."""
    excl = {p: {k: _num(m.get(k)) for k in _TOTAL_KEYS} for p, m in mods.items()}
    for p, m in mods.items():
        if p == "":
            continue
        parent = parent_path(p)
        if parent in excl:
            for k in _TOTAL_KEYS:
                excl[parent][k] -= _num(m.get(k))
    for e in excl.values():
        for k in _TOTAL_KEYS:
            if abs(e[k]) < 1e-6:
                e[k] = 0.0
    return excl


def _shapes(v: Any) -> list[list[int]]:
    """Shapes as lists, from [[1, 10], [3]] or the CSV form '1x10;3' / '1x10; 3'."""
    if isinstance(v, str):
        out: list[list[int]] = []
        for part in v.split(";"):
            part = part.strip()
            if part in ("", "()"):
                out.append([])
                continue
            out.append([int(x) for x in part.split("x") if x.strip().lstrip("-").isdigit()])
        return out
    return [list(s) for s in v or [] if isinstance(s, list | tuple)]


def _io_last_dims(n: Mapping[str, Any]) -> tuple[int, ...]:
    """Last dimension of every input and output of rank >= 2 (empty placeholders such as cat's (0,) skipped)."""
    return tuple(int(s[-1]) for s in _shapes(n.get("input_shapes")) + _shapes(n.get("output_shapes")) if len(s) >= 2)


def family_totals(report: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]] | None = None
                  ) -> dict[str, dict[str, dict[str, float]]]:
    """{phase: {family: totals}}. Analytic counts come from the module tree (exclusive per path) so every op is in
    exactly one family; node data (when given) moves the KV-cache concatenations out of decoder attention and
    adds predicted times."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    mods_all = report.get("modules") or {}
    rows = merged_nodes(report, nodes)
    for phase, mods in mods_all.items():
        types = {p: str(m.get("module_type") or "") for p, m in mods.items()}
        fam: dict[str, dict[str, float]] = {}
        for p, e in _exclusive(mods).items():
            if not any(e.values()):
                continue
            acc = fam.setdefault(_family_of(p, _chain(p, types)), _zero_totals())
            for k in _TOTAL_KEYS:
                acc[k] += e[k]
            acc["modules"] += 1
        for n in rows:
            if n.get("phase") != phase:
                continue
            path = str(n.get("module_path") or "")
            f = _family_of(path, _chain(path, types) or [str(n.get("module_type") or "")], str(n.get("op") or ""),
                           _io_last_dims(n))
            if f == "kv_cache" and "bytes_read" in n:  # analytic data of this node: move it out of attention
                src = fam.setdefault("decoder_attention", _zero_totals())
                dst = fam.setdefault("kv_cache", _zero_totals())
                for k in _TOTAL_KEYS:
                    v = 1.0 if k == "ops" else _num(n.get(k))
                    src[k] -= v
                    dst[k] += v
            if "device_s" in n or "host_s" in n:
                acc = fam.setdefault(f, _zero_totals())
                acc["device_s"] += _num(n.get("device_s"))
                acc["host_s"] += _num(n.get("host_s"))
                acc["timed"] = 1.0
        out[phase] = fam
    return out


def _applied(fam_nodes: Sequence[Mapping[str, Any]]) -> list[str]:
    """The family's cost rules as this report applied them: each distinct traced op (op and input shapes, per
    phase) with its calls and the FLOPs and bytes the rule gave one call, read from the node rows, never
    re-derived. Repeated layers show as one row with their call count."""
    if not fam_nodes:
        return ["(no per-node data in this report: see the traced totals below)"]
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for n in fam_nodes:
        shapes = _shape_str(n.get("input_shapes"))
        g = groups.setdefault((str(n.get("phase", "")), str(n.get("op", "")), shapes),
                              {"calls": 0, "flops": 0.0, "bytes": 0.0, "kernels": 0, "weight_bytes": 0.0})
        g["calls"] += 1
        g["flops"] += _num(n.get("tc_flops")) + _num(n.get("cc_flops"))
        g["bytes"] += _node_bytes(n)
        g["kernels"] += int(_num(n.get("kernels")))
    rows = sorted(groups.items(), key=lambda kv: (kv[0][0] != "prefill", -kv[1]["flops"], -kv[1]["bytes"]))
    table = [[ph, f"`{op}`", shapes or "-", g["calls"], si(g["flops"] / g["calls"], "FLOP"),
              si(g["bytes"] / g["calls"], "B"), si(g["flops"], "FLOP"), si(g["bytes"], "B")]
             for (ph, op, shapes), g in rows[:12]]
    out = _md_table(["phase", "op", "input shapes", "calls", "FLOP per call", "bytes per call (mean)", "FLOP", "bytes"],
                    table, "lllrrrrr")
    if len(rows) > 12:
        out.append(f"({len(rows) - 12} more distinct ops: nodes.csv lists every node)")
    return out


FAMILIES: dict[str, dict[str, str]] = {
    "patch_embed": {
        "title": "Patch and position embeddings",
        "what": "SAM's patch embedding is a 16x16, stride-16 convolution from the RGB image to a grid of "
                "width-768 patch tokens, plus SAM's absolute position embedding; CLIP's embeddings add the CLS "
                "token and (interpolated) position embeddings to the SAM features it receives.",
        "formula": "conv: FLOPs = 2 · B · C_out · H_out · W_out · (C_in/groups) · k_h · k_w (tensor cores, implicit "
                   "GEMM M = B·H_out·W_out, N = C_out, K = C_in·k_h·k_w); + B·C_out·H_out·W_out CUDA-core FLOPs "
                   "for the bias. Bytes: input + weight + bias + output.",
        "rules": "convolution, pointwise, gather, resample",
    },
    "sam_attention": {
        "title": "SAM attention (windowed and global)",
        "what": "SAM ViT-B self-attention: qkv Linear, windowed (14x14) attention in most layers and global "
                "attention in four, with decomposed relative-position bias added to the scores, then the output "
                "projection. transformers builds the rel-pos bias as a dense B·H·Tq·Tk tensor and passes it to "
                "SDPA as a float mask.",
        "formula": "pairs = B·H·Tq·Tk (non-causal); causal: B·H·(Tq(Tq+1)/2 + Tq(Tk−Tq)).\n"
                   "tensor-core FLOPs = 2·pairs·(D + Dv); CUDA-core ≈ 5 per score (max, subtract, exp, sum, "
                   "scale) + 1 with a float bias.\n"
                   "bytes = Q + K + V + bias (dense, read once) + O; the score matrix stays on chip.\n"
                   "Projections: GEMM 2·M·N·K, bytes A + W + C.",
        "rules": "attention, addmm/mm/bmm (qkv, proj, rel-pos), copy (window partition), pointwise",
    },
    "sam_block": {
        "title": "SAM block: MLP, LayerNorms, residuals, windowing",
        "what": "The rest of each SAM ViT-B layer: LayerNorm before attention and before the MLP, the MLP "
                "(Linear 768 -> 3072, GELU, Linear 3072 -> 768), the residual adds, and the window "
                "partition/unpartition padding copies; plus the encoder-level position-embedding add.",
        "formula": "GEMM: 2·M·N·K FLOPs (M tokens, K in, N out); bytes A + W (+ bias) + C.\n"
                   "LayerNorm: ~8 FLOPs per element; bytes x + γ + β + y (+ mean/rstd).\n"
                   "GELU (erf): ~8 FLOPs per element; pointwise bytes in + out.",
        "rules": "addmm, layer_norm, pointwise, copy",
    },
    "sam_neck": {
        "title": "SAM neck and downsampling convolutions",
        "what": "SAM's neck (1x1 conv 768->256, LayerNorm2d, 3x3 conv 256->256, LayerNorm2d) and DeepSeek-OCR's "
                "16x token compressor: two stride-2 3x3 convs 256->512->1024 (`proj`), which turn a 64x64 grid "
                "into 16x16 = 256 tokens.",
        "formula": "conv: FLOPs = 2 · B · C_out · H_out · W_out · C_in · k_h · k_w; bytes input + weight + output.\n"
                   "LayerNorm2d (channel-wise, as pointwise + mean ops): ~1 FLOP per element per op.",
        "rules": "convolution, pointwise, reduce",
    },
    "clip_block": {
        "title": "CLIP-L block (attention, MLP)",
        "what": "CLIP ViT-L/14 encoder (24 layers, width 1024, 16 heads) fed with SAM's compressed features as its "
                "patch embeddings: pre-LayerNorm, q/k/v/out projections, full (non-causal) SDPA, MLP 1024->4096 "
                "with QuickGELU, residuals.",
        "formula": "attention: pairs = B·H·T², FLOPs 2·pairs·(D + Dv) tensor-core + ~5/score CUDA-core; bytes "
                   "Q + K + V + O.\nGEMMs: 2·M·N·K. LayerNorm ~8 FLOPs/element. QuickGELU x·σ(1.702x) as 3 eager "
                   "pointwise ops (mul, sigmoid ~4, mul).",
        "rules": "attention, addmm, layer_norm, pointwise",
    },
    "projector": {
        "title": "Projector and vision-text glue",
        "what": "The linear projector 2048 -> 1280 over the concatenated SAM and CLIP features, the insertion of "
                "`image_newline` and `view_seperator` tokens, and the masked scatter of the image features into "
                "the text embeddings.",
        "formula": "GEMM 2·M·N·K; cat/scatter: bytes read + written, no FLOPs.",
        "rules": "addmm, copy, masked_scatter, gather",
    },
    "decoder_attention": {
        "title": "Decoder attention (MHA with RoPE)",
        "what": "DeepSeek-OCR v1's text attention: plain multi-head attention (10 heads of 128, no MLA), q/k/v/o "
                "Linears without bias, rotary position embedding applied eagerly (mul, neg, cat, add), causal SDPA "
                "in prefill and a 1-query SDPA over the KV cache in decode.",
        "formula": "pairs = B·H·Tq·Tk; causal: B·H·(Tq(Tq+1)/2 + Tq(Tk−Tq)) (diagonal included).\n"
                   "tensor-core FLOPs = 2·pairs·(D + Dv); CUDA-core ≈ 5 per score (+1 with a mask).\n"
                   "bytes = Q + K + V (+ mask) + O.\nProjections: 2·M·N·K each, weights H² per projection.",
        "rules": "attention, mm, pointwise, copy",
    },
    "kv_cache": {
        "title": "KV cache update",
        "what": "transformers' DynamicCache appends each step's K and V with torch.cat along the sequence axis: a "
                "new tensor every step, so the whole cache is read and written again (in prefill the cat is from "
                "an empty tensor: one copy of K and V).",
        "formula": "KV bytes per token = 2 · layers · kv_heads · D · bytes(dtype).\n"
                   "cat per layer per step: read old K (B·h·(L−1)·D) + new K (B·h·1·D), write B·h·L·D; same for V.",
        "rules": "copy (cat)",
    },
    "rmsnorm": {
        "title": "RMSNorm",
        "what": "The decoder's RMSNorm (input and post-attention per layer, and the final norm). Eager "
                "transformers runs it as ~8 aten ops in fp32; a fused engine runs one kernel.",
        "formula": "fused: y = x · rsqrt(mean(x²) + ε) · w: ~4 FLOPs per element; bytes x + w + y.\n"
                   "eager: the sum of the member ops (cast, pow, mean, add, rsqrt, mul, cast, mul), each with its own "
                   "read and write.",
        "rules": "rms_norm (fused), cast, pointwise, reduce (eager)",
    },
    "moe": {
        "title": "MoE: router, routed experts, shared experts",
        "what": "DeepSeek-V2 MoE in layers 1..11: a softmax top-6 router over 64 experts (`gate`), the routed "
                "experts run by transformers' grouped_mm path (sort, histc, gather, two grouped GEMMs, scatter), "
                "and 2 shared experts as one dense SwiGLU MLP of width 2·896.",
        "formula": "routed FLOPs = T·k·(2·H·2I + 2·I·H) (gate+up, then down) tensor-core.\n"
                   "weight bytes = E_touched · 3·H·I · bytes, E_touched = E·(1 − (1 − k/E)^T) (uniform routing; "
                   "--moe-skew concentrates it).\nRouter: GEMM 2·T·H·E, softmax ~5/element, top-k ~log2(k)+1 "
                   "compares per element. Shared experts: dense SwiGLU 3·2·T·H·I_s.",
        "rules": "grouped_mm, moe_experts (fused), mm, softmax, topk, sort, scan, gather, scatter, pointwise",
    },
    "dense_mlp": {
        "title": "Dense MLP (layer 0)",
        "what": "The first decoder layer (first_k_dense_replace = 1) uses a dense SwiGLU MLP: gate and up "
                "projections 1280 -> 6848, SiLU(gate)·up, down projection back to 1280.",
        "formula": "3 GEMMs of 2·M·H·I; SiLU ~4 FLOPs/element, mul 1; bytes: weights 3·H·I·2 B (bf16) + "
                   "activations.",
        "rules": "mm, pointwise",
    },
    "lm_head": {
        "title": "lm_head",
        "what": "The output projection 1280 -> 129,280 vocabulary logits and the top-level fp32 cast of the "
                "logits. DeepSeek-OCR's forward computes logits for every prefill position.",
        "formula": "GEMM 2·M·H·V; bytes: weight H·V·2 B + activations + logits (M·V·2 B, then the fp32 cast reads "
                   "them and writes M·V·4 B).",
        "rules": "mm, cast",
    },
    "decoder_other": {
        "title": "Decoder glue: embeddings, RoPE tables, residuals",
        "what": "Token embedding lookup, rotary cos/sin table construction, the residual adds of the decoder "
                "layers and other small ops outside the modules above.",
        "formula": "gather: bytes = rows picked + indices + output; pointwise: per-element FLOPs, bytes in + out.",
        "rules": "gather, pointwise, cast, fill",
    },
}
FAMILY_ORDER = ["patch_embed", "sam_attention", "sam_block", "sam_neck", "clip_block", "projector",
                "decoder_attention", "kv_cache", "rmsnorm", "moe", "dense_mlp", "lm_head", "decoder_other"]


def _family_table(ft: Mapping[str, Mapping[str, Mapping[str, float]]], fam: str) -> list[str]:
    timed = any(_num((ft.get(ph) or {}).get(fam, {}).get("timed")) for ph in ft)
    headers = ["phase", "tensor-core FLOP", "CUDA-core FLOP", "bytes read", "bytes written", "FLOP/B", "kernels",
               "ops"] + (["device ms", "host ms"] if timed else [])
    rows = []
    for ph, fams in ft.items():
        t = fams.get(fam)
        if not t:
            continue
        fl = t["tc_flops"] + t["cc_flops"]
        nb = t["bytes_read"] + t["bytes_written"]
        r: list[Any] = [ph, si(t["tc_flops"], "FLOP"), si(t["cc_flops"], "FLOP"), si(t["bytes_read"], "B"),
                        si(t["bytes_written"], "B"), f"{_intensity(fl, nb):.1f}", int(t["kernels"]), int(t["ops"])]
        if timed:
            r += [ms(t["device_s"]), ms(t["host_s"])]
        rows.append(r)
    return _md_table(headers, rows)


def nodes_by_family(report: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]] | None
                    ) -> dict[str, list[Mapping[str, Any]]]:
    """Every node row under its layer family, classified once (the docs pages all read it)."""
    mods = report.get("modules") or {}
    types = {ph: {p: str(m.get("module_type") or "") for p, m in mm.items()} for ph, mm in mods.items()}
    out: dict[str, list[Mapping[str, Any]]] = {}
    for n in merged_nodes(report, nodes):
        path = str(n.get("module_path") or "")
        chain = _chain(path, types.get(str(n.get("phase")), {})) or [str(n.get("module_type") or "")]
        out.setdefault(_family_of(path, chain, str(n.get("op") or ""), _io_last_dims(n)), []).append(n)
    return out


def _top_nodes(report: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]] | None, fam: str,
               limit: int = 8, by_family: Mapping[str, list[Mapping[str, Any]]] | None = None
               ) -> tuple[str, list[str]]:
    mods = report.get("modules") or {}
    types = {ph: {p: str(m.get("module_type") or "") for p, m in mm.items()} for ph, mm in mods.items()}
    if by_family is None:
        by_family = nodes_by_family(report, nodes)
    picked = list(by_family.get(fam, []))
    if picked:
        by_time = any("device_s" in n for n in picked)
        def key(n: Mapping[str, Any]) -> tuple[float, float]:
            fl = _num(n.get("tc_flops")) + _num(n.get("cc_flops"))
            return (-_num(n.get("device_s")), -fl) if by_time else (-fl, -_node_bytes(n))

        picked.sort(key=key)
        headers = ["phase", "id", "op", "module", "FLOP", "bytes"] + (["device ms", "bound"] if by_time else [])
        out = []
        for n in picked[:limit]:
            r = [n.get("phase", ""), n.get("id", ""), f"`{n.get('op', '')}`", f"`{n.get('module_path', '')}`",
                 si(_num(n.get("tc_flops")) + _num(n.get("cc_flops")), "FLOP"), si(_node_bytes(n), "B")]
            if by_time:
                r += [ms(n.get("device_s")), n.get("bound", "")]
            out.append(r)
        return ("by predicted device time" if by_time else "by FLOPs, then bytes"), _md_table(
            headers, out, "lrll" + "r" * (len(headers) - 4))
    # no node data: the heaviest leaf modules of the family
    cand = []
    for ph, mm in mods.items():
        tmap = types.get(ph, {})
        excl = _exclusive(mm)
        for p, e in excl.items():
            if any(e.values()) and _family_of(p, _chain(p, tmap)) == fam:
                cand.append((ph, p, tmap.get(p, ""), e))
    cand.sort(key=lambda c: -(c[3]["tc_flops"] + c[3]["cc_flops"]))
    out = [[ph, f"`{p}`", t, si(e["tc_flops"] + e["cc_flops"], "FLOP"), si(e["bytes_read"] + e["bytes_written"], "B"),
            int(e["kernels"])] for ph, p, t, e in cand[:limit]]
    return "modules by FLOPs (no node data in this report)", _md_table(
        ["phase", "module (own ops)", "class", "FLOP", "bytes", "kernels"], out, "lllrrr")


def _module_classes(report: Mapping[str, Any], fam: str) -> list[str]:
    seen: dict[str, None] = {}
    for mm in (report.get("modules") or {}).values():
        tmap = {p: str(m.get("module_type") or "") for p, m in mm.items()}
        for p, t in tmap.items():
            if t and _family_of(p, _chain(p, tmap)) == fam:
                seen[t] = None
    return sorted(seen)


def layer_doc(report: Mapping[str, Any], fam: str, ft: Mapping[str, Any],
              nodes: Sequence[Mapping[str, Any]] | None = None,
              by_family: Mapping[str, list[Mapping[str, Any]]] | None = None) -> str:
    info = FAMILIES[fam]
    wl = report.get("workload") or {}
    L = [f"# {info['title']}", "", "[index](index.md) · [summary](../summary.md)", "", "## What it is", "",
         info["what"], ""]
    classes = _module_classes(report, fam)
    if classes:
        L += ["Module classes here: " + ", ".join(f"`{c}`" for c in classes) + ".", ""]
    L += ["## Cost rule", "", "```", info["formula"], "```", "",
          f"Cost rules involved (src/dsocr_trace/costs): {info['rules']}. See specs/cost-rules.md.", ""]
    L += ["## Applied here", "",
          f"Workload `{wl.get('label', wl.get('mode'))}`: {wl.get('vision_tokens')} vision tokens, "
          f"{wl.get('prefill_tokens')} prefill tokens per sequence, batch {wl.get('batch')}, decode step at KV "
          f"length {wl.get('decode_kv_len')}.", ""]
    if by_family is None:
        by_family = nodes_by_family(report, nodes)
    L += _applied(by_family.get(fam, []))
    L += ["", "Traced totals of this family (every op counted once, under the family of its innermost module):", ""]
    L += _family_table(ft, fam)
    if fam == "kv_cache" and not any((ft.get(ph) or {}).get("kv_cache") for ph in ft):
        L += ["", "(No per-node data in this report: the cache concatenations are counted under "
              "[decoder attention](decoder_attention.md).)"]
    how, table = _top_nodes(report, nodes, fam, by_family=by_family)
    L += ["", f"## Top nodes ({how})", "", *table]
    return "\n".join(L) + "\n"


def families_present(report: Mapping[str, Any], ft: Mapping[str, Mapping[str, Any]]) -> list[str]:
    present = {f for fams in ft.values() for f, t in fams.items() if t.get("ops")}
    if "decoder_attention" in present:
        present.add("kv_cache")  # a page with the formula even when no node data splits it out
    return [f for f in FAMILY_ORDER if f in present]


def write_layer_docs(report: Mapping[str, Any], folder: str | Path,
                     nodes: Sequence[Mapping[str, Any]] | None = None) -> list[Path]:
    """docs/<family>.md per layer family present in the report, and docs/index.md; returns the paths written."""
    root = Path(folder) / "docs"
    root.mkdir(parents=True, exist_ok=True)
    ft = family_totals(report, nodes)
    fams = families_present(report, ft)
    by_family = nodes_by_family(report, nodes)
    written = []
    for fam in fams:
        p = root / f"{fam}.md"
        p.write_text(layer_doc(report, fam, ft, nodes, by_family), encoding="utf-8")
        written.append(p)
    wl = report.get("workload") or {}
    idx = ["# Layer docs", "", f"Model {(report.get('model') or {}).get('id', '?')}, workload "
           f"`{wl.get('label', wl.get('mode'))}` ({wl.get('vision_tokens')} vision tokens, {wl.get('prefill_tokens')} "
           f"prefill tokens, batch {wl.get('batch')}). Back to [summary](../summary.md).", "",
           "Each page: what the layer is, its cost formula, the formula with this workload's numbers, the traced "
           "totals and the heaviest nodes. Every traced op belongs to exactly one page (by its innermost module).",
           ""]
    rows = []
    for fam in fams:
        pre = (ft.get("prefill") or {}).get(fam) or {}
        dec = (ft.get("decode") or {}).get(fam) or {}
        rows.append([f"[{FAMILIES[fam]['title']}]({fam}.md)",
                     si(_num(pre.get("tc_flops")) + _num(pre.get("cc_flops")), "FLOP"),
                     si(_num(pre.get("bytes_read")) + _num(pre.get("bytes_written")), "B"),
                     si(_num(dec.get("tc_flops")) + _num(dec.get("cc_flops")), "FLOP"),
                     si(_num(dec.get("bytes_read")) + _num(dec.get("bytes_written")), "B")])
    idx += _md_table(["layer", "prefill FLOP", "prefill bytes", "decode-step FLOP", "decode-step bytes"], rows)
    (root / "index.md").write_text("\n".join(idx) + "\n", encoding="utf-8")
    written.append(root / "index.md")
    return written


# -- everything ------------------------------------------------------------------------------------------------


def write_all(report: Mapping[str, Any], folder: str | Path,
              nodes: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Path]:
    """report.yaml, nodes.csv, modules.csv, summary.md and docs/*.md into `folder` (report.json is not written
    here). Returns {name: path}."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    out = {"report.yaml": root / "report.yaml", "nodes.csv": root / "nodes.csv", "modules.csv": root / "modules.csv",
           "summary.md": root / "summary.md"}
    write_yaml(report, out["report.yaml"])
    write_nodes_csv(report, out["nodes.csv"], nodes)
    write_modules_csv(report, out["modules.csv"])
    write_summary_md(report, out["summary.md"])
    for p in write_layer_docs(report, root, nodes):
        out[f"docs/{p.name}"] = p
    return out
